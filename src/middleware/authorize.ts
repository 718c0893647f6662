import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { resolveOrgAccess } from "../services/access";

/**
 * Resolves the `:orgId` route parameter against the caller's membership (after requireAuth) and sets
 * `c.var.access`. 404 unknown organization, 403 not a member.
 * @example middleware: [requireAuth(), requireOrgMember(), requirePermission("org:members:read")]
 */
export function requireOrgMember() {
	return createMiddleware<AppEnv>(async (c, next) => {
		const orgId = c.req.param("orgId");
		if (!orgId) throw new ApiError("NOT_FOUND", "organization not found");
		c.set("access", await resolveOrgAccess(c.get("db"), c.get("auth"), orgId));
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

/** 403 unless the caller's role in the organization is one of those given (e.g. "org:admin"). */
export function requireRole(...roles: string[]) {
	return createMiddleware<AppEnv>(async (c, next) => {
		if (!roles.includes(c.get("access").role)) throw new ApiError("FORBIDDEN", `requires role ${roles.join(" or ")}`);
		await next();
	});
}

/** Operators are the user ids listed in OPERATOR_USER_IDS, authenticated with a valid session token. */
export function requireOperator() {
	return createMiddleware<AppEnv>(async (c, next) => {
		if (!c.get("config").OPERATOR_USER_IDS.includes(c.get("auth").userId)) {
			throw new ApiError("FORBIDDEN", "operator access required");
		}
		await next();
	});
}
