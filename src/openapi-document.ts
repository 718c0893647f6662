import { createApp } from "./app";
import { API_KEY_CACHE_TTL_MS, API_KEY_PATTERN, ROTATION_GRACE_MS } from "./auth/api-key";
import { jsonBodyLimit } from "./lib/create-app";
import { rateLimitMiddlewares } from "./middleware/rate-limit";
import { headerRef, RATE_LIMIT_HEADERS, RESPONSE_HEADERS } from "./openapi";

/**
 * The API document (OpenAPI 3.1) of the routes createApp() mounts, completed by finishDocument. Build time
 * only: scripts/vendor-docs.mjs bundles this module for Node with the real @asteasolutions/zod-to-openapi and
 * writes the result to the static assets (public/api/openapi.json), which GET /api/openapi.json answers
 * with. The Worker bundle has no document generator (src/lib/zod-to-openapi) and never imports this module.
 * @example writeFileSync("public/api/openapi.json", JSON.stringify(openApiDocument()))
 */
export function openApiDocument() {
	const app = createApp();
	return finishDocument(
		app.getOpenAPI31Document({
			openapi: "3.1.0",
			info: {
				title: "Edge tenant backend",
				version: "0.1.0",
				description: "Multi-tenant SaaS API on Cloudflare Workers; Clerk session tokens, problem+json errors.",
				// OpenAPI 3.1's SPDX `identifier` (the generator's types only know 3.0's `url`).
				license: { name: "Proprietary", identifier: "LicenseRef-Proprietary" } as { name: string },
				contact: { name: "edge-tenant-backend maintainers" },
			},
			// Relative: the API is served from the host that serves this document.
			servers: [{ url: "/", description: "The host serving this document" }],
		}),
		docFacts(app.routes),
	);
}

/**
 * What the document cannot read from the route definitions, taken from the mounted handlers: which
 * operations run the rateLimit() middleware, and which paths the JSON body cap covers (app.use(prefix/*)).
 */
function docFacts(routes: readonly { method: string; path: string; handler: unknown }[]): DocFacts {
	const limited = new Set(
		routes
			.filter((r) => rateLimitMiddlewares.has(r.handler as never))
			.map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:([A-Za-z0-9_]+)/g, "{$1}")}`),
	);
	const capped = routes.filter((r) => r.handler === jsonBodyLimit && r.path.endsWith("/*")).map((r) => r.path.slice(0, -1));
	return {
		rateLimited: (method, path) => limited.has(`${method.toLowerCase()} ${path}`),
		bodyCapped: (path) => capped.some((prefix) => path.startsWith(prefix)),
	};
}

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
	/** Whether the JSON body cap runs on the path: a request to it with a body over the cap answers 413, whatever it declares. */
	bodyCapped: (path: string) => boolean;
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
 *   collection (POST P with an item path P/{id}), Cache-Control on authenticated operations and on every problem answer, Idempotent-Replayed
 *   on the 2xx of operations that take Idempotency-Key, Deprecation and Link on deprecated aliases and operations with a deprecated body form.
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
			// A request body with a deprecated form (camelCase verify): the answers to it are marked like an alias's.
			const deprecatedForm = JSON.stringify(op.requestBody ?? null).includes('"deprecated":true');
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
			// Also a write that takes no body, sent one over the cap (GET and HEAD requests carry none).
			if (media.length > 0 || (write && facts.bodyCapped(path))) r["413"] ??= problemDoc("Request body over the route's size cap");
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
				if (secured || /^[45]/.test(status)) headers["Cache-Control"] = headerRef("Cache-Control");
				if (status.startsWith("2") && params.has("header:idempotency-key")) headers["Idempotent-Replayed"] = headerRef("Idempotent-Replayed");
				if (op.deprecated || deprecatedForm) {
					headers.Deprecation = headerRef("Deprecation");
					headers.Link = headerRef("Link");
				}
				r[status] = { ...response, headers };
			}
		}
	}
	return doc;
}
