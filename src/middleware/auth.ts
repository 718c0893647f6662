import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import { createMiddleware } from "hono/factory";
import { API_KEY_PREFIX, ApiKeyError } from "../auth/api-key";
import { fromApiKey } from "../auth/claims";
import { TokenError, verifierFor } from "../auth/verifier";
import type { AppEnv } from "../env";
import { ApiError, INVALID, INVALID_DETAIL } from "../errors";
import { authenticateApiKey } from "../services/api-keys";
import { BAD_API_KEYS_PER_MINUTE } from "../services/plans";
import { sessionRevoked } from "../services/sessions";
import { clientIp, takeRateLimit } from "./rate-limit";

export { INVALID, INVALID_DETAIL } from "../errors";
const MISSING = { "WWW-Authenticate": "Bearer" };

/** Exactly "Bearer <token>", case-insensitive scheme, one space, no trailing junk. */
function bearer(header: string | undefined): string | null | undefined {
	if (header === undefined) return undefined;
	const m = /^Bearer ([^\s]+)$/i.exec(header);
	return m ? (m[1] as string) : null;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
/** Routes an API key may call: its organization's /api/orgs/:orgId/… routes (checked by requireOrgMember) and /api/me. */
const keyRoute = (routePath: string) => routePath === "/api/me" || routePath.startsWith("/api/orgs/:orgId");

/**
 * Verifies the Clerk session token from `Authorization: Bearer` or the `__session` cookie and sets
 * `c.var.auth`. Every failure is a 401 problem with WWW-Authenticate; the reason is only logged.
 * Identity headers sent by the client (X-User-Id, X-Org-Id, …) are never read.
 * A browser sends the cookie on its own, so a state-changing request authenticated by it must come
 * from an allowed frontend: its Origin must be one of CLERK_AUTHORIZED_PARTIES (403 otherwise, CSRF).
 * Every answer of an authenticated route carries `Cache-Control: no-store`.
 * A Bearer value starting with `sk_live_` is a tenant API key (auth/api-key.ts; never from the cookie):
 * accepted only on /api/orgs/:orgId/… routes and /api/me (403 elsewhere), as principal `apikey:<id>`.
 * @example router.openapi(createRoute({ middleware: [requireAuth()], ... }), handler)
 */
export function requireAuth() {
	return createMiddleware<AppEnv>(async (c, next) => {
		c.header("Cache-Control", "no-store");
		// A tenant store serves a request the Worker already authenticated: the principal came with it.
		if (c.get("store")) {
			await next();
			c.res.headers.set("Cache-Control", "no-store");
			return;
		}
		const fromHeader = bearer(c.req.header("authorization"));
		if (fromHeader === null) throw new ApiError("INVALID_TOKEN", INVALID_DETAIL, { headers: INVALID });
		if (fromHeader?.startsWith(API_KEY_PREFIX)) {
			await authenticateKey(c, fromHeader);
			await next();
			c.res.headers.set("Cache-Control", "no-store");
			return;
		}
		const token = fromHeader ?? getCookie(c, "__session");
		if (!token) throw new ApiError("UNAUTHORIZED", "a session token is required", { headers: MISSING });
		if (fromHeader === undefined && !SAFE_METHODS.has(c.req.method)) {
			const origin = c.req.header("origin");
			if (!origin || !c.get("config").CLERK_AUTHORIZED_PARTIES.includes(origin)) {
				throw new ApiError(
					"FORBIDDEN",
					"a cookie-authenticated write must come from an allowed origin (or send the token as a Bearer header)",
				);
			}
		}

		const verifier = verifierFor(c.get("config"));
		try {
			const auth = await verifier.verify(token);
			// Sessions ended in Clerk: refused in every isolate within 5 s (services/sessions.ts).
			if (await sessionRevoked(c.get("db"), auth, (p) => c.executionCtx.waitUntil(p))) throw new TokenError("session revoked");
			c.set("auth", auth);
		} catch (err) {
			if (!(err instanceof TokenError)) throw err;
			if (err.upstream) {
				const { CLERK_JWKS_URL } = c.get("config");
				c.get("logger").warn("session keys unavailable", {
					reason: err.reason,
					jwksHost: CLERK_JWKS_URL ? new URL(CLERK_JWKS_URL).host : undefined,
				});
				throw new ApiError("UPSTREAM_UNAVAILABLE", "session keys are unavailable, try again", {
					headers: { "Retry-After": "5" },
				});
			}
			c.get("logger").info("token rejected", { reason: err.reason });
			throw new ApiError("INVALID_TOKEN", INVALID_DETAIL, { headers: INVALID });
		}
		await next();
		c.res.headers.set("Cache-Control", "no-store");
	});
}

// Client addresses whose budget of bad API keys ran out, until when (ms): refused before the D1 lookup.
// Timestamps only (never a promise): each isolate learns it from its own refusal.
const badKeysRefused = new Map<string, number>();

/**
 * A Bearer `sk_live_…` value: the key's principal, or 401. Every key that is not ours (unknown, revoked,
 * expired) costs a D1 lookup, so it spends a token of a per-IP budget (BAD_API_KEYS_PER_MINUTE, RateLimit-*
 * on the 401): past it, 429, and until its Retry-After this isolate looks up no key of that address (one
 * it holds as valid in its cache is still served). A valid key spends none of it.
 */
async function authenticateKey(c: Context<AppEnv>, secret: string): Promise<void> {
	const ip = clientIp(c);
	const until = badKeysRefused.get(ip);
	const wait = until === undefined ? 0 : Math.ceil((until - Date.now()) / 1000);
	if (until !== undefined && wait <= 0) badKeysRefused.delete(ip);
	// Over its budget, the address gets no D1 lookup; a key this isolate holds as valid is still served.
	const refuseLookup =
		wait > 0
			? () =>
					new ApiError("RATE_LIMITED", "too many invalid API keys from this address", {
						headers: {
							"Retry-After": String(wait),
							"RateLimit-Limit": String(BAD_API_KEYS_PER_MINUTE),
							"RateLimit-Remaining": "0",
							"RateLimit-Reset": String(wait),
						},
					})
			: undefined;
	try {
		const key = await authenticateApiKey(c.get("db"), secret, (p) => c.executionCtx.waitUntil(p), refuseLookup);
		c.set("auth", fromApiKey(key));
	} catch (err) {
		if (!(err instanceof ApiKeyError)) throw err;
		c.get("logger").info("api key rejected", { reason: err.message });
		let limits: Record<string, string>;
		try {
			limits = await takeRateLimit(c, "bad-api-key");
		} catch (refused) {
			const retryAfter = refused instanceof ApiError ? Number(refused.headers?.["Retry-After"]) : Number.NaN;
			if (refused instanceof ApiError && refused.code === "RATE_LIMITED" && retryAfter > 0) {
				if (badKeysRefused.size >= 10_000) badKeysRefused.clear();
				badKeysRefused.set(ip, Date.now() + retryAfter * 1000);
			}
			throw refused;
		}
		throw new ApiError("INVALID_TOKEN", INVALID_DETAIL, { headers: { ...INVALID, ...limits } });
	}
	if (!keyRoute(c.req.routePath)) {
		throw new ApiError("FORBIDDEN", "API keys are accepted only on /api/orgs/{orgId}/… routes of their organization and /api/me");
	}
}
