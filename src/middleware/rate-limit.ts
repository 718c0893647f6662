import type { Context, MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";
import { monitorDeps } from "./request-meta";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { BAD_API_KEYS_PER_MINUTE, PUBLIC_REQUESTS_PER_MINUTE, USER_REQUESTS_PER_MINUTE } from "../services/plans";
import { type Decision, DurableObjectRateLimiter, type LimitMode, type RateLimiter } from "../services/rate-limit";
import { noteRateLimited } from "../services/security-monitor";
import { storeCall, storeRoute } from "../tenant-store/directory";

const MINUTE = 60_000;
const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

type Scope = "tenant" | "user" | "public" | "bad-api-key";

function rules(c: Context<AppEnv>, scope: Scope): { key: string; limit: number }[] {
	if (scope === "tenant") {
		const { organization, limits } = c.get("access");
		const { userId, apiKey } = c.get("auth");
		// Narrowest bucket first: takeRateLimit takes them in this order and stops at the first refusal,
		// so a member (or API key) refused by its own bucket spends nothing of the tenant's.
		const own = apiKey
			? // An API key: its own bucket at its own limit (default: the plan's per-user limit), then the tenant's.
				{ key: `org:${organization.id}:apikey:${apiKey.id}`, limit: apiKey.rateLimitPerMinute ?? limits.userRequestsPerMinute }
			: { key: `org:${organization.id}:user:${userId}`, limit: limits.userRequestsPerMinute };
		return [own, { key: `org:${organization.id}`, limit: limits.requestsPerMinute }];
	}
	if (scope === "user") return [{ key: `user:${c.get("auth").userId}`, limit: USER_REQUESTS_PER_MINUTE }];
	const ip = clientIp(c);
	if (scope === "bad-api-key") return [{ key: `badkey:ip:${ip}`, limit: BAD_API_KEYS_PER_MINUTE }];
	return [{ key: `ip:${ip}`, limit: PUBLIC_REQUESTS_PER_MINUTE }];
}

/** Cloudflare sets CF-Connecting-IP at the edge; a client cannot forge it through Cloudflare. */
export const clientIp = (c: Context<AppEnv>) => c.req.header("cf-connecting-ip") ?? "local";

async function workerLimiter(c: Context<AppEnv>, scope: Scope): Promise<RateLimiter> {
	if (scope === "tenant") {
		const orgId = c.get("access").organization.id;
		const route = await storeRoute(c.env, orgId);
		// A store retired by a region change refuses the take: it goes to the new region's store (storeCall).
		if (route.state === "store") return new DurableObjectRateLimiter((key, req) => storeCall(c.env, orgId, route, (s) => s.take(key, req)));
	}
	return new DurableObjectRateLimiter(c.env.RATE_LIMITER);
}

/** The decision that binds: a refusal (longest wait) if any, else the one with the least left. */
function binding(ds: Decision[]): Decision {
	if (ds.length === 1) return ds[0]!;
	const refused = ds.filter((d) => !d.allowed).sort((a, b) => b.retryAfterSeconds - a.retryAfterSeconds);
	return refused[0] ?? [...ds].sort((a, b) => a.remaining - b.remaining)[0]!;
}

/**
 * Per-tenant, per-user-in-tenant (or per-API-key), per-user or per-IP limits (token buckets in the RateLimiter Durable
 * Object). Sets RateLimit-Limit / -Remaining / -Reset on every response of the route; a refusal is a
 * 429 problem with Retry-After. Writes always use strict mode; reads use RATE_LIMIT_MODE (lease by
 * default). If the object cannot be reached, reads fail open and writes fail closed (503) unless
 * RATE_LIMIT_FAIL_OPEN_READS / RATE_LIMIT_FAIL_OPEN_WRITES say otherwise.
 * @example middleware: [requireAuth(), requireOrgMember(), rateLimit("tenant")]
 */
export function rateLimit(scope: Scope) {
	const mw = createMiddleware<AppEnv>(async (c, next) => {
		const headers = await takeRateLimit(c, scope);
		await next();
		for (const [k, v] of Object.entries(headers)) c.res.headers.set(k, v);
	});
	rateLimitMiddlewares.add(mw);
	return mw;
}

/** Every rateLimit() middleware, so the API document can declare RateLimit-* on the routes that run one. */
export const rateLimitMiddlewares = new WeakSet<MiddlewareHandler<AppEnv>>();

/**
 * One request's worth of the scope's limits, for a route that decides itself when a request counts
 * (the provider webhooks limit only traffic whose signature does not verify: routes/webhooks/unverified.ts). Returns the RateLimit-*
 * headers to answer with (none when limits are off or the limiter failed open); throws the 429
 * (or 503 when the limiter is unreachable and fails closed).
 */
export async function takeRateLimit(c: Context<AppEnv>, scope: Scope): Promise<Record<string, string>> {
	const config = c.get("config");
	if (config.RATE_LIMIT_MODE === "off") return {};
	const write = !READ_METHODS.has(c.req.method);
	const mode: LimitMode = write ? "strict" : config.RATE_LIMIT_MODE;
	// In a tenant store the buckets are the store's own (tenant-store/object.ts); a store tenant's routes the
	// Worker serves take from those same buckets; everything else from the RateLimiter objects.
	const limiter = c.get("store")?.limiter ?? (await workerLimiter(c, scope));

	let decision: Decision;
	let refusedKey = "";
	try {
		// One bucket after the other, narrowest first, stopping at the first refusal: a request refused by
		// the per-user bucket never takes a tenant token. (A request the tenant bucket refuses has spent
		// its user token; that member was sending anyway, and a refund would cost another DO call.)
		const ds: Decision[] = [];
		for (const r of rules(c, scope)) {
			const d = await limiter.limit(r.key, { limit: r.limit, windowMs: MINUTE }, mode);
			ds.push(d);
			if (!d.allowed) {
				refusedKey = r.key;
				break;
			}
		}
		decision = binding(ds);
	} catch (err) {
		const open = write ? config.RATE_LIMIT_FAIL_OPEN_WRITES : config.RATE_LIMIT_FAIL_OPEN_READS;
		c.get("logger").warn("rate limiter unavailable", { open, error: err instanceof Error ? err.message : String(err) });
		if (open) return {};
		throw new ApiError("UPSTREAM_UNAVAILABLE", "rate limiter unavailable, retry shortly", { headers: { "Retry-After": "1" } });
	}

	const headers: Record<string, string> = {
		"RateLimit-Limit": String(decision.limit),
		"RateLimit-Remaining": String(decision.remaining),
		"RateLimit-Reset": String(decision.resetSeconds),
	};
	if (!decision.allowed) {
		c.get("logger").info("rate limited", { scope, retryAfter: decision.retryAfterSeconds });
		if (scope === "tenant") {
			// The bucket that refused (the member's, the key's or the tenant's), as the audit entry's target.
			const orgId = c.get("access").organization.id;
			noteRateLimited(monitorDeps(c), orgId, refusedKey, decision.limit);
		}
		throw new ApiError("RATE_LIMITED", `rate limit of ${decision.limit} requests per minute exceeded`, {
			headers: { ...headers, "Retry-After": String(decision.retryAfterSeconds) },
		});
	}
	return headers;
}
