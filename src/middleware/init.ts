import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { matchedRoutes } from "hono/route";
import { monitorDeps } from "./request-meta";
import { createDb, lazySessionDb } from "../db/client";
import type { AppEnv } from "../env";
import { configState, EnvError } from "../env";
import { createLogger } from "../lib/logger";
import { type AuthKind, recordRequest } from "../lib/metrics";
import { setAnswerHeaders } from "../lib/response-headers";
import { continueTrace, traceparentOf } from "../lib/trace";
import { noteResponse } from "../services/security-monitor";

const REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/**
 * Routes that answer whatever the configuration: liveness, readiness (which reports it) and the API
 * document. Every other route answers 500 BAD_ENVIRONMENT naming the misconfigured variables.
 */
const CONFIGURATION_FREE = new Set(["/api/health", "/api/health/ready", "/api/openapi.json", "/docs"]);

/**
 * Headers every response carries, error and 404 answers included (registered first, so it wraps
 * even what init() refuses): `X-Content-Type-Options: nosniff`.
 * @example app.use("*", securityHeaders())
 */
export function securityHeaders() {
	return createMiddleware<AppEnv>(async (c, next) => {
		await next();
		setAnswerHeaders(c, { "X-Content-Type-Options": "nosniff" });
	});
}

/**
 * The route pattern that answered (`/api/orgs/:orgId/products`): the first matched route of an
 * operation (middleware is registered for ALL methods), also when the tenant-store gateway answered
 * for it; "(none)" when no operation matched (404, 405).
 */
function routePattern(c: Context<AppEnv>): string {
	return matchedRoutes(c).find((r) => r.method !== "ALL")?.path ?? "(none)";
}

function authKind(c: Context<AppEnv>): AuthKind {
	const auth = c.get("auth");
	if (auth?.apiKey) return "api_key";
	if (auth) return c.req.header("authorization") ? "session" : "cookie";
	return c.req.path.startsWith("/api/webhooks/") ? "signature" : "none";
}

/**
 * Per-request dependencies: request id, trace (W3C `traceparent`, continued or started: lib/trace.ts),
 * parsed config, drizzle client, logger; one JSON log line per request (request id, trace id, tenant,
 * user, route, status, duration; a tenant store's span only at debug) and, in the Worker, one metrics
 * data point (lib/metrics.ts). Every
 * answer carries `X-Request-Id` and `traceparent` (this request's span, the parent of what it calls).
 * @example app.use("*", init())
 */
export function init() {
	return createMiddleware<AppEnv>(async (c, next) => {
		const started = Date.now();
		const incoming = c.req.header("x-request-id");
		const requestId = incoming && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
		const trace = continueTrace(c.req.header("traceparent"));
		const traceparent = traceparentOf(trace);
		c.set("requestId", requestId);
		c.set("trace", trace);
		c.header("X-Request-Id", requestId);
		c.header("traceparent", traceparent);
		const { config, issues } = configState(c.env);
		c.set("config", config);
		// A tenant store object serves with its own database (tenant-store/object.ts). Elsewhere the
		// directory is read through a D1 session: the client's bookmark (X-D1-Bookmark) makes it read its
		// own writes on a replica; operator paths read the primary.
		// The session opens on the first query: a request answered from the isolate's caches makes none.
		const store = c.get("store");
		let bookmarkOf: (() => string | undefined) | undefined;
		if (store) c.set("db", store.db);
		else if (typeof c.env.DB.withSession === "function") {
			const s = lazySessionDb(c.env.DB, () => ({ bookmark: c.req.header("x-d1-bookmark"), primary: c.req.path.startsWith("/api/admin/") }));
			bookmarkOf = s.bookmark;
			c.set("db", s.db);
		} else c.set("db", createDb(c.env.DB));
		const logger = createLogger(config.LOG_LEVEL, {
			requestId,
			traceId: trace.traceId,
			spanId: trace.spanId,
			...(trace.parentSpanId ? { parentSpanId: trace.parentSpanId } : {}),
		});
		c.set("logger", logger);
		const orgId = () => c.get("access")?.organization.id ?? c.req.param("orgId") ?? c.get("auth")?.orgId ?? undefined;
		// Metered once, by the Worker (a tenant store serves requests the Worker meters).
		const meter = (status: number) => {
			if (c.get("store")) return;
			recordRequest(c.env, {
				organizationId: orgId(),
				route: routePattern(c),
				method: c.req.method,
				status,
				durationMs: Date.now() - started,
				auth: authKind(c),
				traceId: trace.traceId,
			});
		};
		if (issues.length > 0 && !CONFIGURATION_FREE.has(c.req.path)) {
			meter(500);
			throw new EnvError(issues);
		}
		await next();
		// Again on the answer (also one the handler did not make through c, such as a tenant store's).
		const bookmark = bookmarkOf?.();
		setAnswerHeaders(c, { "X-Request-Id": requestId, traceparent, ...(bookmark ? { "X-D1-Bookmark": bookmark } : {}) });
		// Noted once, by the Worker (a tenant store serves requests the Worker already notes).
		const status = c.res.status;
		if (!c.get("store")) noteResponse(() => monitorDeps(c), c.req.path, status);
		// In a tenant store, the line of its span is debug: at info, the Worker's line (same request id,
		// the store's time included) is the request's one line.
		const level = c.get("store") ? "debug" : "info";
		if (logger.enabled(level)) logger[level]("request", {
			method: c.req.method,
			route: routePattern(c),
			path: c.req.path,
			status,
			durationMs: Date.now() - started,
			userId: c.get("auth")?.userId,
			orgId: orgId(),
		});
		meter(status);
	});
}
