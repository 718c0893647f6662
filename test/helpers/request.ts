import { exports } from "cloudflare:workers";

export interface TestResponse {
	status: number;
	headers: Headers;
	json: any;
	text: string;
}

function build(method: string, path: string, opts: { token?: string; headers?: Record<string, string>; body?: unknown }) {
	const headers: Record<string, string> = { ...opts.headers };
	if (opts.token) headers.authorization = `Bearer ${opts.token}`;
	let body: BodyInit | undefined;
	if (opts.body !== undefined) {
		body = typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
		headers["content-type"] ??= "application/json";
	}
	return new Request(`https://api.test${path}`, { method, headers, body });
}

async function read(res: Response): Promise<TestResponse> {
	const text = await res.text();
	let json: any = null;
	try {
		json = text ? JSON.parse(text) : null;
	} catch {
		json = null;
	}
	return { status: res.status, headers: res.headers, json, text };
}

/** Calls the Worker through its default export, as a client would. */
export async function call(
	method: string,
	path: string,
	opts: { token?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<TestResponse> {
	return read(await exports.default.fetch(build(method, path, opts)));
}

export const get = (path: string, token?: string, headers?: Record<string, string>) => call("GET", path, { token, headers });

/** Calls the Worker's fetch handler directly with some vars or bindings overridden (other key sources, modes …). */
export async function callWithEnv(
	overrides: Record<string, unknown>,
	method: string,
	path: string,
	opts: { token?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<TestResponse> {
	const { env } = await import("cloudflare:workers");
	const { createExecutionContext, waitOnExecutionContext } = await import("cloudflare:test");
	const worker = (await import("../../src/index")).default;
	const ctx = createExecutionContext();
	const res = await worker.fetch(build(method, path, opts), { ...env, ...overrides } as typeof env, ctx);
	await waitOnExecutionContext(ctx);
	return read(res);
}
