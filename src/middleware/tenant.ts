import type { MiddlewareHandler } from "hono";
import { requireAuth } from "./auth";
import { requireOrgMember } from "./authorize";
import { meter } from "./meter";
import { rateLimit } from "./rate-limit";
import { requireSeat } from "./seats";

/**
 * The chain every /api/orgs/:orgId route starts with: session token, membership, tenant and per-user
 * rate limits, usage metering with the monthly quota; then the route's own guards.
 * @example middleware: tenantMiddleware(requirePermission("org:members:read"))
 */
export function tenantMiddleware(...guards: MiddlewareHandler[]): MiddlewareHandler[] {
	return [requireAuth(), requireOrgMember(), requireSeat(), rateLimit("tenant"), meter(), ...guards];
}
