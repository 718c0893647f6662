import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import type { AppEnv } from "./env";
import { createRouter, jsonBodyLimit, notFoundOr405, onError } from "./lib/create-app";
import { setAnswerHeaders } from "./lib/response-headers";
import { init, securityHeaders } from "./middleware/init";
import { tenantStoreGateway } from "./middleware/tenant-store";
import { adminRouter } from "./routes/admin/admin.index";
import { apiKeysRouter } from "./routes/api-keys/api-keys.index";
import { auditRouter } from "./routes/audit/audit.index";
import { docsRouter } from "./routes/docs/docs.index";
import { billingRouter } from "./routes/billing/billing.index";
import { endpointsRouter } from "./routes/endpoints/endpoints.index";
import { healthRouter } from "./routes/health/health.index";
import { legacyRouter } from "./routes/legacy/legacy.index";
import { meRouter } from "./routes/me/me.index";
import { myOrgsRouter } from "./routes/my-orgs/my-orgs.index";
import { orgsRouter } from "./routes/orgs/orgs.index";
import { paymentsRouter } from "./routes/payments/payments.index";
import { storeRouter } from "./routes/store/store.index";
import { usageRouter } from "./routes/usage/usage.index";
import { webhooksRouter } from "./routes/webhooks/webhooks.index";

/** The whole API: shared middleware, every router, the OpenAPI document and the error/404 handlers. */
export function createApp() {
	const app = createRouter();
	app.use("*", securityHeaders());
	app.use("*", init());
	app.use("/api/*", allowedOriginsCors);
	// A JSON route sent another media type answers 415: @hono/zod-openapi's media-type gate (HTTPException
	// 415 -> UNSUPPORTED_MEDIA_TYPE in onError); finishDocument documents it.
	// JSON bodies of the API are small; webhook routes apply their own cap to the raw body.
	app.use("/api/orgs/*", jsonBodyLimit);
	app.use("/api/payments/*", jsonBodyLimit);
	// Tenant data (catalogue, orders, audit log, outgoing webhooks) is served by the tenant's own store.
	app.use("/api/orgs/:orgId/*", tenantStoreGateway(() => app.routes));

	const routes = app
		.route("/", healthRouter)
		.route("/", meRouter)
		.route("/", myOrgsRouter)
		.route("/", orgsRouter)
		.route("/", webhooksRouter)
		.route("/", adminRouter)
		.route("/", storeRouter)
		.route("/", paymentsRouter)
		.route("/", billingRouter)
		.route("/", auditRouter)
		.route("/", endpointsRouter)
		.route("/", usageRouter)
		.route("/", legacyRouter)
		.route("/", apiKeysRouter);

	// The document is built with the app (src/openapi-document.ts) into the static assets, and answered from
	// there through the Worker (wrangler.toml [assets] run_worker_first): the bundle has no generator.
	app.get("/api/openapi.json", async (c) => {
		const res = await c.env.ASSETS.fetch(new URL("/api/openapi.json", c.req.url));
		if (!res.ok) throw new Error(`the built API document is missing from the static assets (${res.status}): run scripts/vendor-docs.mjs`);
		return c.body(await res.text(), 200, { "Content-Type": "application/json" });
	});
	app.route("/", docsRouter);

	app.notFound(notFoundOr405(() => app.routes));
	app.onError(onError);

	return routes;
}

const cors_ = cors({
	origin: (origin) => origin,
	credentials: true,
	// Every request header the API reads: X-D1-Bookmark too, so a browser can send back the bookmark it was given.
	allowHeaders: ["Authorization", "Content-Type", "Idempotency-Key", "If-Match", "X-Request-Id", "traceparent", "tracestate", "X-D1-Bookmark"],
	allowMethods: ["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"],
	exposeHeaders: [
		"X-Request-Id",
		"traceparent",
		"ETag",
		"Retry-After",
		"RateLimit-Limit",
		"RateLimit-Remaining",
		"RateLimit-Reset",
		"Idempotent-Replayed",
		"Deprecation",
		"Link",
		"x-d1-bookmark",
	],
	maxAge: 600,
});

/**
 * Browsers: only the frontends allowed as token audiences (CLERK_AUTHORIZED_PARTIES) get CORS. Any
 * other origin gets no CORS header at all (hono/cors would still send Allow-Credentials, Expose-Headers
 * and a 204 preflight without Allow-Origin), and its preflight falls through to routing (204 with Allow
 * on a known path, else 404).
 */
const allowedOriginsCors: MiddlewareHandler<AppEnv> = async (c, next) => {
	// Inside a tenant store: the Worker that forwarded the request answers CORS (once: no `Vary: Origin, Origin`).
	if (c.get("store")) return next();
	const origin = c.req.header("origin");
	if (origin && c.get("config").CLERK_AUTHORIZED_PARTIES.includes(origin)) return cors_(c, next);
	await next();
	if (origin) setAnswerHeaders(c, { Vary: "Origin" }, { append: true });
};

/** The app's route types, for hono/client: `hc<AppType>("https://api.example.com")`. */
export type AppType = ReturnType<typeof createApp>;
