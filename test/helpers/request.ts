import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import type { ExtractSchema } from "hono/types";
import type { AppType } from "../../src/app";
import type { Problem } from "../../src/errors";
import worker from "../../src/index";
import { recordExchange } from "./exchanges";

export type { Problem };

/** The app's routes as hono types them: path pattern -> `$get`/`$post`/… -> { input, output, status }. */
type Api = ExtractSchema<AppType>;
type Verb<K> = K extends `$${infer M}` ? Uppercase<M> : never;

/** Every route of the app as "METHOD /path/:param", e.g. "GET /api/orgs/:orgId/usage". */
export type Route = { [P in keyof Api & string]: `${Verb<keyof Api[P]>} ${P}` }[keyof Api & string];

/**
 * The JSON body `route` answers with `status` (by default its 2xx answers), inferred from the
 * route's zod response schemas: `call<Body<"GET /api/orgs/:orgId/usage">>("GET", …)`.
 */
export type Body<R extends Route, S extends number = 200 | 201 | 202> = R extends `${infer M} ${infer P}`
	? P extends keyof Api
		? Extract<Api[P][`$${Lowercase<M>}` & keyof Api[P]], { status: S }> extends { output: infer O }
			? O
			: never
		: never
	: never;

/** One element of a paginated list route's `data`. */
export type Item<R extends Route> = Body<R> extends { data: (infer I)[] } ? I : never;

/** A response as a test sees it: status, headers, the raw text and the parsed JSON body typed as `T`. */
export interface TestResponse<T = unknown> {
	status: number;
	headers: Headers;
	/** The parsed body (null when the body is empty or not JSON). Typed by the caller: see Body<Route>. */
	json: T;
	text: string;
}

export interface CallOptions {
	token?: string;
	headers?: Record<string, string>;
	body?: unknown;
	/**
	 * Run the request through the Worker's fetch handler with an execution context and wait for its
	 * waitUntil work (usage flushes, security monitors): no sleeping for background work.
	 */
	settle?: boolean;
}

function build(method: string, path: string, opts: CallOptions) {
	const headers: Record<string, string> = { ...opts.headers };
	if (opts.token) headers.authorization = `Bearer ${opts.token}`;
	let body: BodyInit | undefined;
	if (opts.body !== undefined) {
		// A string or bytes as they are (bytes: a body that is not UTF-8), anything else as JSON.
		body = typeof opts.body === "string" || opts.body instanceof Uint8Array ? opts.body : JSON.stringify(opts.body);
		headers["content-type"] ??= "application/json";
	}
	return new Request(`https://api.test${path}`, { method, headers, body });
}

async function read<T>(res: Response): Promise<TestResponse<T>> {
	const text = await res.text();
	let json: unknown;
	try {
		json = text ? JSON.parse(text) : null;
	} catch {
		json = null;
	}
	return { status: res.status, headers: res.headers, json: json as T, text };
}

/**
 * Sends `req` and reads the answer; the exchange is recorded for the OpenAPI exchange check (exchanges.ts).
 */
async function exchange<T>(req: Request, send: (req: Request) => Promise<Response>): Promise<TestResponse<T>> {
	const sent = req.clone();
	const res = await read<T>(await send(req));
	await recordExchange(sent, res);
	return res;
}

/** Calls the Worker's fetch handler directly with an execution context and waits for its background work. */
async function settled(req: Request, overrides: Record<string, unknown> = {}): Promise<Response> {
	const ctx = createExecutionContext();
	const res = await worker.fetch(req, { ...env, ...overrides } as typeof env, ctx);
	await waitOnExecutionContext(ctx);
	return res;
}

/** Calls the Worker through its default export, as a client would. */
export async function call<T = unknown>(method: string, path: string, opts: CallOptions = {}): Promise<TestResponse<T>> {
	return exchange<T>(build(method, path, opts), (req) => (opts.settle ? settled(req) : exports.default.fetch(req)));
}

/**
 * `fetch` for a client under test (hono's hc, …): calls the Worker through its default export and records
 * the exchange like call().
 */
export async function fetchWorker(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
	return recorded(new Request(input, init), (req) => exports.default.fetch(req));
}

/** fetchWorker with some vars or bindings overridden, through the fetch handler like callWithEnv (RATE_LIMIT_MODE …). */
export function fetchWorkerWithEnv(overrides: Record<string, unknown>): typeof fetch {
	return (input, init) => recorded(new Request(input, init), (req) => settled(req, overrides));
}

async function recorded(req: Request, send: (req: Request) => Promise<Response>): Promise<Response> {
	const sent = req.clone();
	const res = await send(req);
	const text = await res.clone().text();
	await recordExchange(sent, { status: res.status, headers: res.headers, text });
	return res;
}

export const get = <T = unknown>(path: string, token?: string, headers?: Record<string, string>) =>
	call<T>("GET", path, { token, headers });

/** Calls the Worker's fetch handler directly with some vars or bindings overridden (other key sources, modes …). */
export async function callWithEnv<T = unknown>(
	overrides: Record<string, unknown>,
	method: string,
	path: string,
	opts: Omit<CallOptions, "settle"> = {},
): Promise<TestResponse<T>> {
	return exchange<T>(build(method, path, opts), (req) => settled(req, overrides));
}
