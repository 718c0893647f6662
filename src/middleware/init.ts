import { createMiddleware } from "hono/factory";
import { monitorDeps } from "./request-meta";
import { createDb, sessionDb } from "../db/client";
import type { AppEnv } from "../env";
import { configState, EnvError } from "../env";
import { createLogger } from "../lib/logger";
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
		try {
			c.res.headers.set("X-Content-Type-Options", "nosniff");
		} catch {
			// A Response with immutable headers (passed through from fetch): copy it once.
			c.res = new Response(c.res.body, c.res);
			c.res.headers.set("X-Content-Type-Options", "nosniff");
		}
	});
}

/**
 * Per-request dependencies: request id, parsed config, drizzle client, logger; one JSON log line
 * per request (request id, tenant, user, route, status, duration).
 * @example app.use("*", init())
 */
export function init() {
	return createMiddleware<AppEnv>(async (c, next) => {
		const started = Date.now();
		const incoming = c.req.header("x-request-id");
		const requestId = incoming && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
		c.set("requestId", requestId);
		c.header("X-Request-Id", requestId);
		const { config, issues } = configState(c.env);
		c.set("config", config);
		// A tenant store object serves with its own database (tenant-store/object.ts). Elsewhere the
		// directory is read through a D1 session: the client's bookmark (X-D1-Bookmark) makes it read its
		// own writes on a replica; operator paths read the primary.
		const store = c.get("store");
		let session: D1DatabaseSession | undefined;
		if (store) c.set("db", store.db);
		else if (typeof c.env.DB.withSession === "function") {
			const s = sessionDb(c.env.DB, { bookmark: c.req.header("x-d1-bookmark"), primary: c.req.path.startsWith("/api/admin/") });
			session = s.session;
			c.set("db", s.db);
		} else c.set("db", createDb(c.env.DB));
		const logger = createLogger(config.LOG_LEVEL, { requestId });
		c.set("logger", logger);
		if (issues.length > 0 && !CONFIGURATION_FREE.has(c.req.path)) throw new EnvError(issues);
		await next();
		c.header("X-Request-Id", requestId);
		const bookmark = session?.getBookmark();
		if (bookmark) c.header("X-D1-Bookmark", bookmark);
		// Noted once, by the Worker (a tenant store serves requests the Worker already notes).
		if (!c.get("store")) noteResponse(monitorDeps(c), c.req.path, c.res.status);
		const auth = c.get("auth");
		logger.info("request", {
			method: c.req.method,
			route: c.req.routePath,
			path: c.req.path,
			status: c.res.status,
			durationMs: Date.now() - started,
			userId: auth?.userId,
			orgId: c.get("access")?.organization.id ?? c.req.param("orgId") ?? auth?.orgId ?? undefined,
		});
	});
}
