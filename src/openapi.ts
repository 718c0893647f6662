import { z } from "@hono/zod-openapi";
import { TRACEPARENT_PATTERN } from "./lib/trace";

export const ProblemSchema = z
	.object({
		type: z.string().openapi({ example: "https://errors.edge-tenant.dev/forbidden" }),
		title: z.string().openapi({ example: "Forbidden" }),
		status: z.number().int().openapi({ example: 403 }),
		detail: z.string().openapi({ example: "missing permission org:members:read" }),
		requestId: z.string().openapi({ example: "6f1c2c0e-4f6d-4d7e-9d55-2f2b8b9b7c11" }),
		traceId: z
			.string()
			.regex(/^[0-9a-f]{32}$/)
			.openapi({
				description:
					OPENAPI_TEXT ? "Extension member: the request's W3C trace id (the caller's when it sent a valid `traceparent`), as in the " +
					"`traceparent` response header and the request's log lines." : undefined,
				example: "4bf92f3577b34da6a3ce929d0e0e4736",
			}),
		code: z.string().openapi({ example: "FORBIDDEN" }),
		errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
	})
	.openapi("Problem");

const problem = (description: string) => ({
	description,
	content: { "application/problem+json": { schema: ProblemSchema } },
});

/**
 * HTTP-level refusals: a known path with another method answers 405 with `Allow`; a body that is not
 * JSON on a route that takes JSON answers 415. Part of commonErrors; the document adds 415 to every
 * operation with a JSON request body (see finishDocument, src/openapi-document.ts).
 */
const httpErrors = {
	405: problem("Method not allowed on this path (the Allow header lists the methods it serves)"),
} as const;

/** Error responses every route can produce, spread into each createRoute's responses. */
export const commonErrors = {
	400: problem("Bad request or validation failure"),
	...httpErrors,
	429: problem("Rate limited (Retry-After and RateLimit-* headers)"),
	500: problem("Internal error"),
} as const;

/** For routes that take a JSON body, next to commonErrors: 415. */
export const jsonBodyErrors = {
	415: problem("Unsupported media type: send the body as application/json"),
} as const;

const integerHeader = { type: "integer", minimum: 0 } as const;

/**
 * Response headers, declared once (components.headers) and referenced from each response (by finishDocument,
 * src/openapi-document.ts, and by rateLimitHeaders).
 */
export const RESPONSE_HEADERS = {
	"X-Request-Id": {
		description: OPENAPI_TEXT ? "The request's id (the client's X-Request-Id when well formed, else a fresh UUID); also `requestId` in problems." : undefined,
		required: true,
		schema: { type: "string" },
	},
	"X-D1-Bookmark": {
		description:
			OPENAPI_TEXT ? "The directory session's bookmark (D1 Sessions API). Send it back as `X-D1-Bookmark` on the next request to read your own writes from a read replica. An answer that needed no directory read (served from the isolate's caches) hands back the bookmark you sent, or none; absent on routes served by a tenant store." : undefined,
		schema: { type: "string" },
	},
	traceparent: {
		description:
			OPENAPI_TEXT ? "W3C Trace Context: `00-<trace id>-<span id>-<flags>`, this request's span. The trace id is the one of the " +
			"request's `traceparent` header when it sent a valid one (continued), else a new one; it is `traceId` in " +
			"problems and in every log line of the request (and of the tenant store and queue consumer work it caused)." : undefined,
		required: true,
		schema: { type: "string", pattern: TRACEPARENT_PATTERN },
	},
	"RateLimit-Limit": {
		description: OPENAPI_TEXT ? "Requests per minute allowed by the bucket that binds (absent when rate limiting is off or failed open)." : undefined,
		schema: integerHeader,
	},
	"RateLimit-Remaining": {
		description: OPENAPI_TEXT ? "Requests left in that bucket." : undefined,
		schema: integerHeader,
	},
	"RateLimit-Reset": {
		description: OPENAPI_TEXT ? "Seconds until that bucket is full again." : undefined,
		schema: integerHeader,
	},
	"Retry-After": {
		description: OPENAPI_TEXT ? "Seconds to wait before retrying." : undefined,
		schema: integerHeader,
	},
	"WWW-Authenticate": {
		description: OPENAPI_TEXT ? '`Bearer` when no credential was sent, `Bearer error="invalid_token"` for a refused one.' : undefined,
		required: true,
		schema: { type: "string" },
	},
	Allow: {
		description: OPENAPI_TEXT ? "The methods this path serves." : undefined,
		required: true,
		schema: { type: "string" },
	},
	Location: {
		description: OPENAPI_TEXT ? "Path of the created resource (an Idempotency-Key replay answers without it)." : undefined,
		schema: { type: "string", format: "uri-reference" },
	},
	"Cache-Control": {
		description: OPENAPI_TEXT ? "`no-store` on every answer of an authenticated operation and on every problem answer (an error is never cached)." : undefined,
		schema: { type: "string" },
	},
	"Idempotent-Replayed": {
		description:
			OPENAPI_TEXT ? "`true` when this is the stored answer to an earlier request with the same Idempotency-Key (nothing was " +
			"done again); absent on a first answer." : undefined,
		schema: { type: "string", enum: ["true"] },
	},
	Deprecation: {
		description:
			OPENAPI_TEXT ? "RFC 9745: the date the alias (or the body form sent) was deprecated, `@` and seconds since the epoch; Link names " +
			"the successor. On every answer that reaches the operation, errors included (not on refusals before routing, such as 413)." : undefined,
		schema: { type: "string", pattern: "^@[0-9]+$", example: "@1795910400" },
	},
	Link: {
		description: OPENAPI_TEXT ? 'The successor of this deprecated alias: `<path>; rel="successor-version"`. Sent with Deprecation.' : undefined,
		schema: { type: "string" },
	},
} as const;

type HeaderName = keyof typeof RESPONSE_HEADERS;
export const headerRef = (name: HeaderName) => ({ $ref: `#/components/headers/${name}` });
export const RATE_LIMIT_HEADERS: HeaderName[] = ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"];

/**
 * RateLimit-* by reference, for a route that spends its rate budget only on some requests (the provider
 * webhooks: unverified ones, routes/webhooks/unverified.ts); the middleware-limited routes get them from finishDocument (src/openapi-document.ts).
 */
export const rateLimitHeaders = () => Object.fromEntries(RATE_LIMIT_HEADERS.map((h) => [h, headerRef(h)]));

export const authErrors = {
	...commonErrors,
	401: problem("Missing or invalid session token (WWW-Authenticate)"),
	503: problem("Session keys temporarily unavailable"),
} as const;

export const orgErrors = {
	...authErrors,
	402: problem("The caller's seat is beyond the plan's seats (admins first, then by join order)"),
	403: problem("Not a member, or missing permission/role"),
	404: problem("Unknown organization"),
} as const;

export const jsonContent = <T extends z.ZodType>(schema: T, description: string) => ({
	description,
	content: { "application/json": { schema } },
});

export const OrgIdParam = z.object({
	orgId: z
		.string()
		.min(1)
		.max(128)
		.openapi({ param: { name: "orgId", in: "path" }, example: "org_2abc" }),
});

/**
 * The Idempotency-Key request header of the POSTs that run the idempotency() middleware, with the shape that
 * middleware enforces (1-255 visible ASCII characters, else 400).
 */
export const IdempotencyKeyHeader = z.object({
	"idempotency-key": z
		.string()
		.regex(/^[\x21-\x7e]{1,255}$/)
		.optional()
		.openapi({
			description:
				OPENAPI_TEXT ? "The same key and request (method, path, caller, body) within 24 h replays the first 2xx " +
				"(Idempotent-Replayed: true) and does nothing again; another request, or the first still running: 409." : undefined,
		}),
});

export const CursorQuery = z.object({
	cursor: z.string().max(512).optional().openapi({ description: OPENAPI_TEXT ? "Opaque cursor from nextCursor" : undefined }),
	limit: z.coerce.number().int().min(1).max(100).default(20),
});

export { problem };
