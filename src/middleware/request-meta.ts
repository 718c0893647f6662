import type { Context } from "hono";
import type { AppEnv } from "../env";
import type { RequestMeta } from "../lib/request-meta";
import type { MonitorDeps } from "../services/security-monitor";

/** The plain-value view of a request that services take (see RequestMeta). */
export function requestMeta(c: Context<AppEnv>): RequestMeta {
	const cf = (c.req.raw as Request & { cf?: { country?: string } }).cf;
	return {
		requestId: c.get("requestId") ?? null,
		ip: c.req.header("cf-connecting-ip") ?? null,
		country: cf?.country ?? c.req.header("cf-ipcountry") ?? null,
		userAgent: c.req.header("user-agent")?.slice(0, 512) ?? null,
		actor: c.get("auth")?.userId ?? null,
	};
}

/**
 * Dependencies of the security monitors, taken from the request. `meta` is read only when a monitor
 * writes an entry (a 401/403 burst, a rate-limit refusal): init() builds these deps for every
 * response, and reading `request.cf` and the headers costs more than the rest of a light request's
 * middleware (issue 17).
 */
export function monitorDeps(c: Context<AppEnv>): MonitorDeps {
	let meta: RequestMeta | undefined;
	return {
		env: c.env,
		get meta() {
			meta ??= requestMeta(c);
			return meta;
		},
		logger: c.get("logger"),
		waitUntil: (p) => c.executionCtx.waitUntil(p),
	};
}
