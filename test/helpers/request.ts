import { exports } from "cloudflare:workers";

export async function call(
	method: string,
	path: string,
	opts: { token?: string; headers?: Record<string, string>; body?: unknown } = {},
) {
	const headers: Record<string, string> = { ...opts.headers };
	if (opts.token) headers.authorization = `Bearer ${opts.token}`;
	let body: BodyInit | undefined;
	if (opts.body !== undefined) {
		body = typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
		headers["content-type"] ??= "application/json";
	}
	const res = await exports.default.fetch(new Request(`https://api.test${path}`, { method, headers, body }));
	const text = await res.text();
	let json: any = null;
	try {
		json = text ? JSON.parse(text) : null;
	} catch {
		json = null;
	}
	return { status: res.status, headers: res.headers, json, text };
}

export const get = (path: string, token?: string, headers?: Record<string, string>) => call("GET", path, { token, headers });

/** Calls the Worker's fetch handler directly with some vars overridden (other key sources, azp lists …). */
export async function callWithEnv(
	overrides: Record<string, unknown>,
	method: string,
	path: string,
	opts: { token?: string; headers?: Record<string, string> } = {},
) {
	const { env } = await import("cloudflare:workers");
	const { createExecutionContext, waitOnExecutionContext } = await import("cloudflare:test");
	const worker = (await import("../../src/index")).default;
	const headers: Record<string, string> = { ...opts.headers };
	if (opts.token) headers.authorization = `Bearer ${opts.token}`;
	const ctx = createExecutionContext();
	const res = await worker.fetch(
		new Request(`https://api.test${path}`, { method, headers }),
		{ ...env, ...overrides } as typeof env,
		ctx,
	);
	await waitOnExecutionContext(ctx);
	const text = await res.text();
	let json: any = null;
	try {
		json = text ? JSON.parse(text) : null;
	} catch {
		json = null;
	}
	return { status: res.status, headers: res.headers, json, text };
}
