import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { AppEnv } from "../env";
import { EnvError } from "../env";
import { ApiError, type ErrorCode, type FieldError, fieldErrors, problemResponse, statusToCode } from "../errors";
import { createLogger, errorFields } from "./logger";
import { continueTrace, traceparentOf } from "./trace";

// The pieces every router and the app share. This module imports no route: routes import createRouter
// from here, and src/app.ts (which mounts the routes) imports them too, so the graph only points down.

/**
 * Every router comes from here, so AppEnv reaches every handler and zod failures share one shape.
 * @example export const healthRouter = createRouter().openapi(routes.health, (c) => c.json({ status: "ok" }, 200));
 */
export function createRouter() {
	return new OpenAPIHono<AppEnv>({
		strict: true,
		defaultHook: (result) => {
			if (!result.success) {
				const errors = fieldErrors(result.error.issues);
				throw new ApiError("VALIDATION_FAILED", errors.map((e) => `${e.path}: ${e.message}`).join("; "), {
					errors,
				});
			}
			// The validated body is what the handler stores and answers with (in place: the validator returns this object).
			if (result.target === "json") replaceLoneSurrogates(result.data);
		},
	});
}

/** ES2024 string methods (workerd has them; the project's TypeScript lib is ES2023). */
type WellFormed = string & { isWellFormed(): boolean; toWellFormed(): string };
const wellFormed = (s: string) => ((s as WellFormed).isWellFormed() ? s : (s as WellFormed).toWellFormed());

/**
 * Replaces lone surrogates (a JSON `"\ud800"` escape with no pair: not Unicode text) in every string and key of
 * a parsed JSON body by U+FFFD, in place. SQLite stores text as UTF-8, which does the same, so what a handler
 * answers from the body (a 201's echo, an audit entry) is what is stored and read back later; invalid UTF-8
 * bytes already arrive as U+FFFD (the body is decoded as UTF-8).
 */
function replaceLoneSurrogates(value: unknown): void {
	if (value === null || typeof value !== "object") return;
	if (Array.isArray(value)) {
		value.forEach((v, i) => {
			if (typeof v === "string") value[i] = wellFormed(v);
			else replaceLoneSurrogates(v);
		});
		return;
	}
	const record = value as Record<string, unknown>;
	for (const key of Object.keys(record)) {
		const v = record[key];
		const k = wellFormed(key);
		if (k !== key) {
			delete record[key];
			record[k] = v;
		}
		if (typeof v === "string") record[k] = wellFormed(v);
		else replaceLoneSurrogates(v);
	}
}

/**
 * A problem+json response carrying the request's id and trace id, with its `traceparent` (fresh ones
 * when init() has not run).
 */
function problem(
	c: Context<AppEnv>,
	code: ErrorCode,
	detail: string,
	headers: Record<string, string> = {},
	errors?: FieldError[],
) {
	const trace = c.get("trace") ?? continueTrace();
	const ids = { requestId: c.get("requestId") ?? crypto.randomUUID(), traceId: trace.traceId };
	return problemResponse(code, detail, ids, { traceparent: traceparentOf(trace), ...headers }, errors);
}

/** The request's logger, or (init() has not run) one on its trace. */
const loggerOf = (c: Context<AppEnv>) => c.get("logger") ?? createLogger("error", { traceId: c.get("trace")?.traceId });

/**
 * `Location` of a resource a POST created in the request's collection: `<request path>/<id>`.
 * @example return c.json(row, 201, createdLocation(c, row.id));
 */
export const createdLocation = (c: Context, id: string) => ({ Location: `${c.req.path}/${encodeURIComponent(id)}` });

const MAX_JSON_BODY_BYTES = 256 * 1024;

/** Caps JSON request bodies; the API's bodies are small (webhook routes cap their raw body themselves). */
export const jsonBodyLimit = bodyLimit({
	maxSize: MAX_JSON_BODY_BYTES,
	onError: () => {
		throw new ApiError("PAYLOAD_TOO_LARGE", `request body exceeds ${MAX_JSON_BODY_BYTES} bytes`);
	},
});

/** A route as the app knows it: method and path (hono `:param` or OpenAPI `{param}` segments). */
interface RouteEntry {
	method: string;
	path: string;
}

/** A matcher for a route path: each parameter segment matches one path segment. */
function pathPattern(path: string): RegExp {
	const source = path
		.split("/")
		.map((seg) =>
			/^:|^\{[^}]+\}$/.test(seg) ? "[^/]+" : seg === "*" ? ".*" : seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"),
		)
		.join("/");
	return new RegExp(`^${source}$`);
}

/** Matchers built on first use from a route list that is complete by then (the app's). */
function lazyTable<T>(build: () => T): () => T {
	let table: T | undefined;
	return () => (table ??= build());
}

/**
 * The app's 404 handler: a known path asked with another method answers 405 problem+json with
 * `Allow` (an OPTIONS request there, 204 with `Allow`; CORS preflights from allowed origins are
 * answered before routing); an unknown path 404.
 * @example app.notFound(notFoundOr405(() => app.routes))
 */
export function notFoundOr405(routes: () => readonly RouteEntry[]): NotFoundHandler<AppEnv> {
	const table = lazyTable(() => {
		const byPath = new Map<string, { pattern: RegExp; methods: Set<string> }>();
		for (const r of routes()) {
			if (r.method === "ALL") continue;
			const entry = byPath.get(r.path) ?? { pattern: pathPattern(r.path), methods: new Set<string>() };
			entry.methods.add(r.method);
			if (r.method === "GET") entry.methods.add("HEAD");
			byPath.set(r.path, entry);
		}
		return [...byPath.values()];
	});
	return (c) => {
		const methods = new Set<string>();
		for (const { pattern, methods: m } of table()) if (pattern.test(c.req.path)) m.forEach((x) => methods.add(x));
		if (methods.size === 0) return problem(c, "NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`);
		const allow = [...methods, "OPTIONS"].join(", ");
		if (c.req.method === "OPTIONS") return c.body(null, 204, { Allow: allow });
		return problem(c, "METHOD_NOT_ALLOWED", `${c.req.method} is not allowed on ${c.req.path}`, { Allow: allow });
	};
}

/** ApiError -> its problem; EnvError -> 500 BAD_ENVIRONMENT naming the variables; anything else -> logged 500. */
export const onError: ErrorHandler<AppEnv> = (err, c) => {
	if (err instanceof ApiError) return problem(c, err.code, err.detail, err.headers, err.errors);
	if (err instanceof EnvError) {
		loggerOf(c).error("bad environment", { issues: err.issues });
		return problem(
			c,
			"BAD_ENVIRONMENT",
			`service configuration is invalid: ${err.issues.map((i) => i.split(":")[0]).join(", ")}`,
		);
	}
	if (err instanceof HTTPException) {
		const code = statusToCode(err.status);
		// @hono/zod-openapi's media-type gate says only "Unsupported Media Type": say what the route takes.
		const detail = err.status === 415 ? "this route takes a JSON body: send it with Content-Type: application/json" : err.message;
		return problem(c, code, detail || code.toLowerCase());
	}
	loggerOf(c).error("unhandled error", errorFields(err));
	return problem(c, "INTERNAL_SERVER_ERROR", "an unexpected error occurred");
};
