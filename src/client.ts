import { hc } from "hono/client";
import type { AppType } from "./app";

/**
 * Every response header the API document declares (on any operation's responses) and the type of its schema.
 * `typedHeaders` reads exactly these, integers as numbers. scripts/client-types.mjs refuses to build the client
 * when this table and the served document disagree.
 */
export const DECLARED_HEADERS = {
	"X-Request-Id": "string",
	"X-D1-Bookmark": "string",
	traceparent: "string",
	"RateLimit-Limit": "integer",
	"RateLimit-Remaining": "integer",
	"RateLimit-Reset": "integer",
	"Retry-After": "integer",
	"WWW-Authenticate": "string",
	Allow: "string",
	Location: "string",
	ETag: "string",
	"Cache-Control": "string",
	"Idempotent-Replayed": "string",
	Deprecation: "string",
	Link: "string",
} as const;

type DeclaredHeaders = typeof DECLARED_HEADERS;
/**
 * The declared headers an answer carried, as values of their schema's type. Here every one is optional; the
 * published declarations (npm run build:client) type them per operation and status from the document: Location
 * only on the 201s that declare it, X-Request-Id always present, and so on.
 */
type TypedHeaders = { readonly [H in keyof DeclaredHeaders]?: DeclaredHeaders[H] extends "integer" ? number : string };

/** The declared headers of `headers`: integers (RateLimit-*, Retry-After) as numbers, a malformed integer left out. */
function readTypedHeaders(headers: Headers): TypedHeaders {
	const out: Record<string, string | number> = {};
	for (const [name, type] of Object.entries(DECLARED_HEADERS)) {
		const value = headers.get(name);
		if (value === null) continue;
		if (type === "string") out[name] = value;
		else if (/^\d+$/.test(value)) out[name] = Number(value);
	}
	return out;
}

type Method = "get" | "post" | "put" | "patch" | "delete";
/** hono's client with `typedHeaders` on every response its methods ($get, $post, …) answer. */
type WithTypedHeaders<C> = {
	[K in keyof C]: K extends `$${Method}`
		? C[K] extends (...args: infer A) => Promise<infer R>
			? (...args: A) => Promise<R & { readonly typedHeaders: TypedHeaders }>
			: C[K]
		: K extends `$${string}`
			? C[K]
			: WithTypedHeaders<C[K]>;
};

/**
 * Typed client for TypeScript frontends (types only travel; no server code is bundled). Published as
 * `edge-tenant-backend/client` with self-contained declarations (scripts/client-types.mjs, `npm run build:client`).
 * Every response also has `typedHeaders`: the response headers the document declares for that operation and
 * status, read as typed values (RateLimit-Limit/Remaining/Reset and Retry-After as numbers, Location on a 201 that
 * creates a resource, X-Request-Id, …).
 * @example
 * const api = createClient("https://api.example.com", async () => (await clerk.session?.getToken()) ?? null);
 * const res = await api.api.orgs[":orgId"].members.$get({ param: { orgId }, query: { limit: "20" } });
 * if (res.ok) { const { data, nextCursor } = await res.json(); }
 * const left = res.typedHeaders["RateLimit-Remaining"]; // number | undefined
 */
export function createClient(baseUrl: string, getToken?: () => Promise<string | null | undefined>, fetchImpl?: typeof fetch) {
	const client = hc<AppType>(baseUrl, {
		fetch: async (input: RequestInfo | URL, init?: RequestInit) => {
			const res = await (fetchImpl ?? fetch)(input, init);
			return Object.defineProperty(res, "typedHeaders", { value: readTypedHeaders(res.headers), enumerable: true });
		},
		headers: async (): Promise<Record<string, string>> => {
			const token = await getToken?.();
			return token ? { authorization: `Bearer ${token}` } : {};
		},
	});
	return client as WithTypedHeaders<typeof client>;
}

export type { AppType };
