import { z } from "@hono/zod-openapi";
import { API_KEY_CACHE_TTL_MS, API_KEY_PATTERN, ROTATION_GRACE_MS } from "./auth/api-key";
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
					"Extension member: the request's W3C trace id (the caller's `traceparent` trace when it sent a valid one), " +
					"as in the `traceparent` response header and in every log line of the request.",
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
 * operation with a JSON request body (see finishDocument).
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

type Json = Record<string, unknown>;
interface DocResponse {
	description?: string;
	headers?: Record<string, unknown>;
	content?: Json;
}
interface DocOperation {
	operationId?: string;
	deprecated?: boolean;
	security?: Record<string, string[]>[];
	parameters?: { name?: string; in?: string }[];
	requestBody?: { content?: Json };
	responses?: Record<string, DocResponse>;
}

/** How callers authenticate; provider webhooks each have their own signature scheme. */
const SECURITY_SCHEMES = {
	bearer: {
		type: "http",
		scheme: "bearer",
		bearerFormat: "Clerk session JWT or tenant API key (sk_live_...)",
		description: [
			"`Authorization: Bearer <token>`: a Clerk session token (JWT), or a tenant API key.",
			"",
			"**API key format.** `sk_live_` + base62 of 32 random bytes (alphabet 0-9A-Za-z, left-padded with `0` to 43 " +
				`characters): 51 characters in all, \`${API_KEY_PATTERN.source}\`. Secret scanners match \`sk_live_[0-9A-Za-z]{43}\` ` +
				"between non-alphanumeric characters; there is no checksum, the fixed prefix and length are the signal (Stripe's live " +
				"secret keys share the prefix: ours have exactly 43 characters after it). Only the " +
				"SHA-256 of the secret is stored; the API shows `prefix` and `last4`. A Bearer value starting with `sk_live_` is " +
				"always taken as a key (a key in the `__session` cookie is refused). Keys are made with POST /api/orgs/{orgId}/api-keys.",
			"",
			"**Principal.** A key acts as `apikey:<id>`, only on its organization's /api/orgs/{orgId}/… routes (another " +
				"organization answers as to a non-member: 403, or 404 when unknown) and GET /api/me (schema MeApiKey: " +
				"`{user: null, apiKey: {id, name, prefix, last4, expiresAt}, organization: {id, slug, role: null, permissions}}`); " +
				"other routes answer 403. It has exactly its own permissions (a subset of its creator's), no role (role-only routes " +
				"answer 403) and no seat. It is rate-limited in its own bucket (its rateLimitPerMinute, else the plan's per-user " +
				"limit), then in the tenant's, metered like any call, and is the actor `apikey:<id>` of its audit entries.",
			"",
			`**Delays.** Revocation, permission changes and rotation apply at once in the isolate that makes them and within ${API_KEY_CACHE_TTL_MS / 1000} s ` +
				`in every other (key rows are cached per isolate for ${API_KEY_CACHE_TTL_MS / 1000} s). After a rotation the replaced secret works for ` +
				`${ROTATION_GRACE_MS / 1000} s more (previousKeyExpiresAt); rotating again ends that at once. Expiry (expiresAt) is checked on every request.`,
		].join("\n"),
	},
	session: {
		type: "apiKey",
		in: "cookie",
		name: "__session",
		description:
			"Clerk's `__session` cookie, accepted where Bearer is (the Authorization header wins when both are sent). " +
			"CSRF rule: a POST/PATCH/PUT/DELETE authenticated by the cookie must carry an `Origin` listed in " +
			"CLERK_AUTHORIZED_PARTIES, else 403; GET/HEAD/OPTIONS need no Origin.",
	},
	clerkSvix: {
		type: "apiKey",
		in: "header",
		name: "svix-signature",
		description:
			"Svix signature of a Clerk delivery: `v1,<base64 HMAC-SHA256>` entries over `${svix-id}.${svix-timestamp}.${raw body}` " +
			"with CLERK_WEBHOOK_SECRET; needs the svix-id and svix-timestamp headers too.",
	},
	clerkStandardWebhooks: {
		type: "apiKey",
		in: "header",
		name: "webhook-signature",
		description:
			"The same signature under the Standard Webhooks names; needs webhook-id and webhook-timestamp too. " +
			"Used when no svix-* header is sent.",
	},
	razorpaySignature: {
		type: "apiKey",
		in: "header",
		name: "x-razorpay-signature",
		description: "Hex HMAC-SHA256 of the raw body with RAZORPAY_WEBHOOK_SECRET.",
	},
	stripeSignature: {
		type: "apiKey",
		in: "header",
		name: "stripe-signature",
		description: "Stripe's `t=<seconds>,v1=<hex>` signature with STRIPE_WEBHOOK_SECRET (300 s tolerance).",
	},
} as const;

const integerHeader = { type: "integer", minimum: 0 } as const;

/** Response headers, declared once (components.headers) and referenced from each response. */
const RESPONSE_HEADERS = {
	"X-Request-Id": {
		description: "The request's id (the client's X-Request-Id when well formed, else a fresh UUID); also `requestId` in problems.",
		required: true,
		schema: { type: "string" },
	},
	"X-D1-Bookmark": {
		description:
			"The directory session's bookmark (D1 Sessions API). Send it back as `X-D1-Bookmark` on the next request to read your own writes from a read replica; absent on routes served by a tenant store.",
		schema: { type: "string" },
	},
	traceparent: {
		description:
			"W3C Trace Context: `00-<trace id>-<span id>-<flags>`, this request's span. The trace id is the one of the " +
			"request's `traceparent` header when it sent a valid one (continued), else a new one; it is `traceId` in " +
			"problems and in every log line of the request (and of the tenant store and queue consumer work it caused).",
		required: true,
		schema: { type: "string", pattern: TRACEPARENT_PATTERN },
	},
	"RateLimit-Limit": {
		description: "Requests per minute allowed by the bucket that binds (absent when rate limiting is off or failed open).",
		schema: integerHeader,
	},
	"RateLimit-Remaining": {
		description: "Requests left in that bucket.",
		schema: integerHeader,
	},
	"RateLimit-Reset": {
		description: "Seconds until that bucket is full again.",
		schema: integerHeader,
	},
	"Retry-After": {
		description: "Seconds to wait before retrying.",
		schema: integerHeader,
	},
	"WWW-Authenticate": {
		description: '`Bearer` when no credential was sent, `Bearer error="invalid_token"` for a refused one.',
		required: true,
		schema: { type: "string" },
	},
	Allow: {
		description: "The methods this path serves.",
		required: true,
		schema: { type: "string" },
	},
	Location: {
		description: "Path of the created resource (an Idempotency-Key replay answers without it).",
		schema: { type: "string", format: "uri-reference" },
	},
	"Cache-Control": {
		description: "`no-store` on the answers of authenticated operations that passed authentication.",
		schema: { type: "string" },
	},
	"Idempotent-Replayed": {
		description:
			"`true` when this is the stored answer to an earlier request with the same Idempotency-Key (nothing was " +
			"done again); absent on a first answer.",
		schema: { type: "string", enum: ["true"] },
	},
	Deprecation: {
		description:
			"`true`: this operation is a deprecated alias; Link names its successor. Sent on every answer that reaches " +
			"the operation, errors included (not on refusals made before routing, such as 413 or a 500 for a misconfiguration).",
		schema: { type: "string", enum: ["true"] },
	},
	Link: {
		description: 'The successor of this deprecated alias: `<path>; rel="successor-version"`. Sent with Deprecation.',
		schema: { type: "string" },
	},
} as const;

type HeaderName = keyof typeof RESPONSE_HEADERS;
const headerRef = (name: HeaderName) => ({ $ref: `#/components/headers/${name}` });
const RATE_LIMIT_HEADERS: HeaderName[] = ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"];

/**
 * RateLimit-* by reference, for a route that spends its rate budget only on some requests (the Clerk
 * webhook: unverified ones); the middleware-limited routes get them from finishDocument.
 */
export const rateLimitHeaders = () => Object.fromEntries(RATE_LIMIT_HEADERS.map((h) => [h, headerRef(h)]));

/** A problem response in the document (the Problem schema by reference). */
const problemDoc = (description: string): DocResponse => ({
	description,
	content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } },
});

const METHODS = new Set(["get", "put", "post", "delete", "options", "head", "patch", "trace"]);

/**
 * A stable camelCase operationId from method and path: the method, then the path's literal segments
 * after /api (kebab-case joined in PascalCase), then `ById` when the path ends in a parameter.
 * `GET /api/orgs/{orgId}/products/{productId}` -> `getOrgsProductsById`. A route may set its own.
 */
export function operationIdFor(method: string, path: string): string {
	const segments = path.replace(/^\/api(?=\/|$)/, "").split("/").filter(Boolean);
	const words = segments
		.filter((s) => !s.startsWith("{"))
		.map((s) => s.split(/[^A-Za-z0-9]+/).filter(Boolean).map((w) => w[0]!.toUpperCase() + w.slice(1)).join(""));
	const byId = segments.at(-1)?.startsWith("{") ? "ById" : "";
	return `${method.toLowerCase()}${words.join("")}${byId}`;
}

/** What the app knows about its routes that the route definitions do not say. */
export interface DocFacts {
	/** Whether the operation runs the rateLimit() middleware (RateLimit-* on its responses). */
	rateLimited: (method: string, path: string) => boolean;
}

/**
 * The served document, completed centrally so every operation follows the same rules:
 * - an operationId (operationIdFor unless the route sets one; duplicates throw);
 * - security: bearer operations also accept the `__session` cookie; operations without security are
 *   public (`security: []`); webhooks keep their signature schemes;
 * - the problem responses the middleware can produce: 400, 405, 429, 500 everywhere; 401, 403 and 503
 *   where authenticated; 404 under a path parameter; 409 with Idempotency-Key; 412 with If-Match; 413 and
 *   415 (JSON) with a request body; 503 on rate-limited writes (the limiter fails closed);
 * - response headers by reference: X-Request-Id and traceparent on every response, RateLimit-* on rate-limited ones,
 *   Retry-After on 429 and 503, WWW-Authenticate on 401, Allow on 405, Location on a 201 that creates an item of a
 *   collection (POST P with an item path P/{id}), Cache-Control on authenticated operations, Idempotent-Replayed
 *   on the 2xx of operations that take Idempotency-Key, Deprecation and Link on deprecated aliases.
 */
export function finishDocument<D extends { paths?: unknown; components?: unknown }>(doc: D, facts: DocFacts): D {
	const paths = (doc.paths ?? {}) as Record<string, Record<string, DocOperation>>;
	const components = ((doc as { components?: Json }).components ??= {}) as Json;
	components.securitySchemes = { ...(components.securitySchemes as Json | undefined), ...SECURITY_SCHEMES };
	components.headers = { ...(components.headers as Json | undefined), ...RESPONSE_HEADERS };
	const itemPaths = new Set(Object.keys(paths).filter((p) => /\/\{[^}]+\}$/.test(p)).map((p) => p.replace(/\/\{[^}]+\}$/, "")));
	const seen = new Map<string, string>();

	for (const [path, ops] of Object.entries(paths)) {
		for (const [method, op] of Object.entries(ops)) {
			if (!METHODS.has(method) || typeof op !== "object" || op === null) continue;
			const where = `${method.toUpperCase()} ${path}`;
			op.operationId ??= operationIdFor(method, path);
			const clash = seen.get(op.operationId);
			if (clash) throw new Error(`operationId ${op.operationId} of ${where} is also used by ${clash}`);
			seen.set(op.operationId, where);

			const secured = (op.security ?? []).some((r) => "bearer" in r);
			if (secured) op.security = [{ bearer: [] }, { session: [] }];
			else op.security ??= [];

			const params = new Set((op.parameters ?? []).map((p) => `${p.in}:${(p.name ?? "").toLowerCase()}`));
			const hasPathParam = [...params].some((p) => p.startsWith("path:"));
			const media = Object.keys(op.requestBody?.content ?? {});
			const limited = facts.rateLimited(method, path);
			const write = method !== "get" && method !== "head";
			const r = (op.responses ??= {});
			r["400"] ??= problemDoc("Bad request or validation failure");
			r["405"] ??= problemDoc("Method not allowed on this path (the Allow header lists the methods it serves)");
			r["429"] ??= problemDoc("Rate limited or over quota (Retry-After)");
			r["500"] ??= problemDoc("Internal error");
			if (secured) {
				r["401"] ??= problemDoc("Missing or invalid credential");
				r["403"] ??= problemDoc(
					write ? "Not allowed (permission, role, or a cookie-authenticated write from an origin not allowed)" : "Not allowed",
				);
				r["503"] ??= problemDoc("Session keys temporarily unavailable (Retry-After)");
			}
			if (limited && write) r["503"] ??= problemDoc("Rate limiter unavailable (Retry-After)");
			if (hasPathParam) r["404"] ??= problemDoc("Not found");
			if (params.has("header:idempotency-key")) r["409"] ??= problemDoc("Idempotency-Key reused for another request, or still in progress");
			if (params.has("header:if-match")) r["412"] ??= problemDoc("If-Match does not match the current ETag");
			if (media.length > 0) r["413"] ??= problemDoc("Request body over the route's size cap");
			if (media.some((m) => /json/i.test(m))) r["415"] ??= problemDoc("Unsupported media type: send the body as application/json");

			for (const [status, response] of Object.entries(r)) {
				const headers: Record<string, unknown> = {
					...response.headers,
					"X-Request-Id": headerRef("X-Request-Id"),
					"X-D1-Bookmark": headerRef("X-D1-Bookmark"),
					traceparent: headerRef("traceparent"),
				};
				if (limited || status === "429") for (const h of RATE_LIMIT_HEADERS) headers[h] ??= headerRef(h);
				if (status === "429" || status === "503") headers["Retry-After"] = headerRef("Retry-After");
				if (status === "401") headers["WWW-Authenticate"] = headerRef("WWW-Authenticate");
				if (status === "405") headers.Allow = headerRef("Allow");
				if (status === "201" && method === "post" && itemPaths.has(path)) headers.Location = headerRef("Location");
				if (secured) headers["Cache-Control"] = headerRef("Cache-Control");
				if (status.startsWith("2") && params.has("header:idempotency-key")) headers["Idempotent-Replayed"] = headerRef("Idempotent-Replayed");
				if (op.deprecated) {
					headers.Deprecation = headerRef("Deprecation");
					headers.Link = headerRef("Link");
				}
				r[status] = { ...response, headers };
			}
		}
	}
	return doc;
}

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
				"Optional. The same key with the same request (method, path, caller, body) within 24 h answers the first " +
				"2xx again (Idempotent-Replayed: true) and does nothing again; with another request, or while the first is " +
				"still running, 409.",
		}),
});

export const CursorQuery = z.object({
	cursor: z.string().max(512).optional().openapi({ description: "Opaque cursor from nextCursor" }),
	limit: z.coerce.number().int().min(1).max(100).default(20),
});

export { problem };
