import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { traceparentOf } from "../lib/trace";
import { forgetStoreRoute, storeCall, storeRoute } from "../tenant-store/directory";
import { responseFromWire, wireRequest } from "../tenant-store/wire";
import { resolveOrgAccess } from "../services/access";
import { requireAuth } from "./auth";

/** The /api/orgs/:orgId/<segment>/… routes whose data lives in the tenant's store. */
export const STORE_SEGMENTS = new Set(["categories", "products", "orders", "audit-logs", "webhooks"]);
const READS = new Set(["GET", "HEAD", "OPTIONS"]);

interface RouteEntry {
	method: string;
	path: string;
}

// The store routes as patterns by "<method> <segment>", compiled once per routes array (and again if it
// grows): every route's pattern was compiled and tried on every tenant request before (issue 17).
const compiled = new WeakMap<readonly RouteEntry[], { size: number; byKey: Map<string, RegExp[]> }>();
function patterns(routes: readonly RouteEntry[], method: string, segment: string): RegExp[] {
	let hit = compiled.get(routes);
	if (!hit || hit.size !== routes.length) {
		const byKey = new Map<string, RegExp[]>();
		for (const r of routes) {
			const key = `${r.method} ${r.path.split("/")[4]}`;
			// As the router (strict: a trailing slash is another path, 404).
			byKey.set(key, [...(byKey.get(key) ?? []), new RegExp(`^${r.path.replace(/:[^/]+/g, "[^/]+")}$`)]);
		}
		hit = { size: routes.length, byKey };
		compiled.set(routes, hit);
	}
	return hit.byKey.get(`${method} ${segment}`) ?? [];
}

/** Whether some route of the app answers this method and path (otherwise the Worker answers 404/405 itself). */
function routed(routes: readonly RouteEntry[], method: string, path: string): boolean {
	const m = method === "HEAD" ? "GET" : method;
	return patterns(routes, m, path.split("/")[4] ?? "").some((pattern) => pattern.test(path));
}

// Settings (string vars and secrets) of an env as JSON, computed once per env object: the store serves
// with the Worker's, and keys the env it builds from them by this string (one string over RPC, parsed
// by the store only when it changes).
const settingsOf = new WeakMap<object, string>();
function settings(env: object): string {
	let s = settingsOf.get(env);
	if (s === undefined) {
		s = JSON.stringify(Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === "string")));
		settingsOf.set(env, s);
	}
	return s;
}

/**
 * Sends a tenant-data request to the tenant's store (tenant-store/object.ts) once the caller's token
 * verified: the store runs the route with its own database and mirror, so the Worker makes one
 * Durable Object call and no D1 call (the organization's route is cached: directory.ts). A tenant not
 * yet moved by the upgrade job is served here from the shared tables, as before; while it is being
 * moved its writes answer 503 with Retry-After. The request id and the trace (`traceparent`: this
 * request's span as the parent) go with the request. Inside the store this middleware does nothing.
 * @example app.use("/api/orgs/:orgId/*", tenantStoreGateway(() => app.routes))
 */
export function tenantStoreGateway(routes: () => readonly RouteEntry[]) {
	return createMiddleware<AppEnv>(async (c, next) => {
		if (c.get("store")) return next();
		const orgId = c.req.param("orgId");
		const segment = c.req.path.split("/")[4];
		if (!orgId || !segment || !STORE_SEGMENTS.has(segment) || !routed(routes(), c.req.method, c.req.path)) return next();
		let route = await storeRoute(c.env, orgId);
		if (route.state === "d1" || (route.state === "migrating" && READS.has(c.req.method))) return next();
		let served: Response | undefined;
		// The credential first: a deleted or moving organization answers only a verified caller.
		await requireAuth()(c, async () => {
			if (route.state === "migrating") {
				throw new ApiError("UPSTREAM_UNAVAILABLE", "this organization's data is being moved to its store; retry shortly", {
					headers: { "Retry-After": "30" },
				});
			}
			// An organization the directory does not know: only its member (by the token's claims, which writes
			// its placeholder rows) gets a store made for it; a made-up id answers 404 here and makes none. Then
			// the route is read again: Clerk's webhook may have written the row (its region) meanwhile.
			if (route.unknown) {
				await resolveOrgAccess(c.get("db"), c.get("auth"), orgId);
				forgetStoreRoute(orgId);
				route = await storeRoute(c.env, orgId);
				if (route.state === "d1" || route.state === "migrating") {
					throw new ApiError("UPSTREAM_UNAVAILABLE", "this organization's data is being moved; retry shortly", { headers: { "Retry-After": "1" } });
				}
			}
			if (route.state === "deleted") throw new ApiError("NOT_FOUND", "organization not found");
			// The store's init() continues the trace: its log lines carry this request's trace id.
			const forwarded = await wireRequest(c.req.raw, { "x-request-id": c.get("requestId"), traceparent: traceparentOf(c.get("trace")) });
			// A store retired by a region change refuses: the request goes to the new region's store. 503
			// Retry-After for one the runtime reports overloaded (see storeCall).
			const res = await storeCall(c.env, orgId, route, (s) => s.serve(forwarded, c.get("auth"), orgId, settings(c.env)));
			served = responseFromWire(res);
			c.res = served;
		});
		return served;
	});
}
