import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { errorFields } from "../lib/logger";
import { operatorAction, recordOperatorAction } from "../services/operator-actions";

/**
 * Records what an operator did (D1 `operator_actions`, GET /api/admin/actions): every request of an
 * operator route that changes something or exports a tenant, once it succeeded (2xx) or failed on the
 * server's side (5xx: it may be partly done), before its answer leaves: who (the operator's user id), what, which organization (its path's, else what the handler set in
 * `actionOrganizationId`: a replayed event's) and target, what was asked (an override's
 * fields), the status and the request id. A failure to record is logged with the same fields and does not
 * turn the answer into an error: what the request did is done. Use after requireOperator.
 * @example middleware: [requireAuth(), requireOperator(), rateLimit("user"), recordOperatorActions()]
 */
export function recordOperatorActions() {
	return createMiddleware<AppEnv>(async (c, next) => {
		const action = operatorAction(c.req.method, c.req.routePath);
		try {
			await next();
		} catch (err) {
			// An error the app's onError turns into the answer (a 5xx): what it did may be partly done.
			if (action) await record(c, action, err instanceof ApiError ? err.status : 500);
			throw err;
		}
		if (action) await record(c, action, c.res.status);
	});
}

/**
 * One operator action: every 2xx, and every 5xx (a deletion whose store wipe failed has marked the tenant
 * deleted already: what was done may be partly done). A 4xx changed nothing and is not recorded.
 */
async function record(c: Context<AppEnv>, action: string, status: number): Promise<void> {
	if (status >= 300 && status < 500) return;
	const entry = {
		operatorId: c.get("auth").userId,
		action,
		organizationId: c.req.param("orgId") ?? c.get("actionOrganizationId") ?? null,
		targetId: c.req.param("svixId") ?? c.req.param("id") ?? null,
		detail: c.req.method === "PATCH" || c.req.method === "POST" ? validJson(c) : undefined,
		status,
		requestId: c.get("requestId"),
	};
	try {
		await recordOperatorAction(c.get("db"), entry);
	} catch (err) {
		c.get("logger").error("operator action not recorded", { ...entry, ...errorFields(err) });
	}
}

/** The request's validated JSON body, when its route declares one. */
function validJson(c: { req: { valid: (target: never) => unknown } }): unknown {
	return c.req.valid("json" as never) ?? undefined;
}
