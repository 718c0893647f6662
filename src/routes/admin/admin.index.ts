import { createRouter } from "../../lib/create-app";
import { traceparentOf } from "../../lib/trace";
import { withChangeLog } from "../../middleware/change-log";
import { listAllEvents, replayEvent } from "../../services/events-log";
import { exportTenant, getOperatorOrg, offboardTenant, operatorHealth, updateOperatorOrg } from "../../services/operator";
import { listOperatorActions } from "../../services/operator-actions";
import { listOutbox, replayOutboxRow } from "../../services/outbox";
import { changeRegion, directoryChanged, storeHasData } from "../../tenant-store/directory";
import * as routes from "./admin.routes";

export const adminRouter = createRouter()
	.openapi(routes.replayEvent, async (c) => {
		const { svixId } = c.req.valid("param");
		// The event's organization, for the operator action recorded whatever the send's outcome.
		await replayEvent(c.get("db"), c.env.WEBHOOK_QUEUE, svixId, traceparentOf(c.get("trace")), (e) => c.set("actionOrganizationId", e.organizationId));
		c.get("logger").info("event replay queued", { svixId, operator: c.get("auth").userId });
		return c.json({ status: "queued" as const, svixId }, 202);
	})
	.openapi(routes.health, async (c) => c.json(await operatorHealth(c.get("db")), 200))
	.openapi(routes.listEvents, async (c) => c.json(await listAllEvents(c.get("db"), c.req.valid("query")), 200))
	.openapi(routes.getOrg, async (c) => {
		const { orgId } = c.req.valid("param");
		return c.json(await getOperatorOrg(c.get("db"), orgId, await storeHasData(c.env, orgId)), 200);
	})
	.openapi(routes.updateOrg, async (c) => {
		const { orgId } = c.req.valid("param");
		const patch = c.req.valid("json");
		// A move first retires the old region's store (or answers it has data: 409); then, whatever the
		// outcome, the store the directory names serves (a move back reinstates a retired store).
		// The audit entry commits with the change (outbox); relayed once it committed, else by the cron.
		const org = await changeRegion(c.env, orgId, patch.dataRegion, (inStore) =>
			withChangeLog(c, (log) => updateOperatorOrg(c.get("db"), orgId, patch, log, inStore)),
		);
		// The tenant's store reads plan, limits and suspension again on its next request.
		await directoryChanged(c.env, orgId);
		c.get("logger").info("organization overridden by an operator", { orgId, operator: c.get("auth").userId });
		return c.json(org, 200);
	})
	.openapi(routes.exportOrg, async (c) => {
		const { orgId } = c.req.valid("param");
		const body = await exportTenant(c.env, c.get("db"), orgId, c.get("config").RAZORPAY_KEY_ID);
		c.get("logger").info("tenant exported by an operator", { orgId, operator: c.get("auth").userId });
		// @hono/zod-openapi types every `application/…json` media type (x-ndjson too) as a c.json() answer; this one is a stream.
		return c.body(body, 200, { "Content-Type": "application/x-ndjson", "Cache-Control": "no-store" }) as never;
	})
	.openapi(routes.deleteOrg, async (c) => {
		const { orgId } = c.req.valid("param");
		const result = await offboardTenant(c.env, c.get("db"), orgId);
		c.get("logger").warn("tenant offboarded by an operator: store wiped", { orgId, operator: c.get("auth").userId });
		return c.json(result, 202);
	})
	.openapi(routes.listOutbox, async (c) => c.json(await listOutbox(c.get("db"), c.req.valid("query")), 200))
	.openapi(routes.listActions, async (c) => c.json(await listOperatorActions(c.get("db"), c.req.valid("query")), 200))
	.openapi(routes.replayOutbox, async (c) => {
		const { id } = c.req.valid("param");
		c.set("actionOrganizationId", (await replayOutboxRow(c.get("db"), id)).organizationId);
		c.get("logger").info("outbox row re-armed", { id, operator: c.get("auth").userId });
		return c.json({ status: "pending" as const, id }, 202);
	});
