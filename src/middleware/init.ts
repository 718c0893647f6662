import { createMiddleware } from "hono/factory";
import { monitorDeps } from "./request-meta";
import { createDb } from "../db/client";
import type { AppEnv } from "../env";
import { parseEnv } from "../env";
import { createLogger } from "../lib/logger";
import { noteResponse } from "../services/security-monitor";

const REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

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
		const config = parseEnv(c.env);
		c.set("config", config);
		c.set("db", createDb(c.env.DB));
		const logger = createLogger(config.LOG_LEVEL, { requestId });
		c.set("logger", logger);
		await next();
		c.header("X-Request-Id", requestId);
		noteResponse(monitorDeps(c), c.req.path, c.res.status);
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
