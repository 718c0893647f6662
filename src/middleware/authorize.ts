import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { type OrgAccess, resolveOrgAccess } from "../services/access";
import { cheapestPlanWith, type Feature, PLANS, planOf } from "../services/plans";

/** 403 ORG_SUSPENDED for an organization an operator suspended (PATCH /api/admin/orgs/:orgId). */
function notSuspended(access: OrgAccess): OrgAccess {
	if (access.suspended) throw new ApiError("ORG_SUSPENDED", "this organization is suspended; contact support");
	return access;
}

/**
 * Resolves the `:orgId` route parameter against the caller's membership (after requireAuth) and sets
 * `c.var.access`. 404 unknown organization, 403 not a member, 403 ORG_SUSPENDED a suspended organization.
 * @example middleware: [requireAuth(), requireOrgMember(), requirePermission("org:members:read")]
 */
export function requireOrgMember() {
	return createMiddleware<AppEnv>(async (c, next) => {
		const orgId = c.req.param("orgId");
		if (!orgId) throw new ApiError("NOT_FOUND", "organization not found");
		// In a tenant store: the store's mirror of the directory answers (no D1 read on the request path).
		const store = c.get("store");
		const access = store ? await store.access(c.get("auth"), orgId) : await resolveOrgAccess(c.get("db"), c.get("auth"), orgId);
		c.set("access", notSuspended(access));
		await next();
	});
}

/**
 * For routes without :orgId ("Bearer + org"): the token's active organization, resolved like
 * requireOrgMember. 403 when the session has no active organization.
 */
export function requireActiveOrg() {
	return createMiddleware<AppEnv>(async (c, next) => {
		const auth = c.get("auth");
		if (!auth.orgId) throw new ApiError("FORBIDDEN", "an active organization is required: select one in your session");
		c.set("access", notSuspended(await resolveOrgAccess(c.get("db"), auth, auth.orgId)));
		await next();
	});
}

/** 403 unless the caller's effective permissions in the organization include every one given. */
export function requirePermission(...needed: string[]) {
	return createMiddleware<AppEnv>(async (c, next) => {
		const { permissions } = c.get("access");
		const missing = needed.filter((p) => !permissions.includes(p));
		if (missing.length > 0) throw new ApiError("FORBIDDEN", `missing permission ${missing.join(", ")}`);
		await next();
	});
}

/** 403 unless the caller's role in the organization is one of those given (e.g. "org:admin"); an API key has no role. */
export function requireRole(...roles: string[]) {
	return createMiddleware<AppEnv>(async (c, next) => {
		const { role } = c.get("access");
		if (role === null || !roles.includes(role)) throw new ApiError("FORBIDDEN", `requires role ${roles.join(" or ")}`);
		await next();
	});
}

/**
 * Operators are the user ids listed in OPERATOR_USER_IDS, authenticated with their own active session
 * token: not an impersonation (whoever can impersonate users in Clerk would otherwise act as an operator,
 * the operator's id in every log line) and not a pending session.
 */
export function requireOperator() {
	return createMiddleware<AppEnv>(async (c, next) => {
		const auth = c.get("auth");
		if (!c.get("config").OPERATOR_USER_IDS.includes(auth.userId)) throw new ApiError("FORBIDDEN", "operator access required");
		if (auth.actor !== undefined) throw new ApiError("FORBIDDEN", "operator access requires the operator's own session, not an impersonation");
		if (auth.sessionStatus !== undefined && auth.sessionStatus !== "active") {
			throw new ApiError("FORBIDDEN", `operator access requires an active session (this one is ${auth.sessionStatus})`);
		}
		await next();
	});
}

/**
 * 402 problem+json unless the organization's plan includes the feature (the body names the cheapest
 * plan that does). Use after requireOrgMember.
 * @example middleware: [requireAuth(), requireOrgMember(), requireFeature("outgoing_webhooks")]
 */
export function requireFeature(feature: Feature) {
	return createMiddleware<AppEnv>(async (c, next) => {
		const plan = planOf(c.get("access").organization.plan);
		if (!PLANS[plan].features[feature]) {
			throw new ApiError(
				"PAYMENT_REQUIRED",
				`feature ${feature} is not in the ${plan} plan; upgrade to ${cheapestPlanWith(feature)}`,
			);
		}
		await next();
	});
}
