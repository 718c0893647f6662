import type { RateLimiter as RateLimiterObject } from "../durable-objects/rate-limiter";
import { type Bucket, type TakeRequest, type TakeResult, takeTokens } from "../lib/token-bucket";

interface LimitRule {
	/** Requests allowed per window. */
	limit: number;
	windowMs: number;
}

export interface Decision {
	allowed: boolean;
	limit: number;
	remaining: number;
	/** Seconds until the budget is fully restored. */
	resetSeconds: number;
	/** Seconds until a retry can succeed (refused decisions only). */
	retryAfterSeconds: number;
}

/** Strict: every request is one atomic take in the Durable Object. Lease: see DurableObjectRateLimiter. */
export type LimitMode = "strict" | "lease";

export interface RateLimiter {
	limit(key: string, rule: LimitRule, mode: LimitMode): Promise<Decision>;
}

/** Tokens an isolate takes at once in lease mode: 5% of the limit, between 1 and 50. */
export function leaseSize(limit: number): number {
	return Math.max(1, Math.min(50, Math.floor(limit / 20)));
}
/** A lease's unspent tokens go back to the object with the isolate's next take after this long. */
const LEASE_TTL_MS = 2_000;

interface Lease {
	/** Tokens this isolate may still spend without asking the object. */
	tokens: number;
	expiresAt: number;
	/** Bucket tokens left in the object when the lease was granted. */
	remaining: number;
	resetAt: number;
}

// Isolate-local lease state, keyed by limit key. Safe across requests: leased tokens were already
// debited in the Durable Object, so spending them here can never admit more than the bucket holds.
const leases = new Map<string, Lease>();
// Keys the object refused, until the moment it said a token would be available again.
const blocked = new Map<string, { until: number; limit: number; resetAt: number }>();

const seconds = (ms: number) => Math.max(0, Math.ceil(ms / 1000));

function validate(r: unknown): TakeResult {
	const t = r as TakeResult;
	if (
		typeof t !== "object" ||
		t === null ||
		![t.granted, t.limit, t.remaining, t.resetMs, t.retryAfterMs].every((n) => typeof n === "number" && Number.isFinite(n))
	) {
		throw new Error("rate limiter returned an invalid response");
	}
	return t;
}

/** A take answered as a strict-mode decision (one token). */
function decided(r: TakeResult): Decision {
	return {
		allowed: r.granted > 0,
		limit: r.limit,
		remaining: r.remaining,
		resetSeconds: seconds(r.resetMs),
		retryAfterSeconds: r.granted > 0 ? 0 : Math.max(1, seconds(r.retryAfterMs)),
	};
}

/** Where the buckets are: one take from the bucket of `key`. */
export type TakeFrom = (key: string, req: TakeRequest) => Promise<TakeResult>;

/**
 * Token buckets in Durable Objects: by default the RateLimiter object of each key ("org:<id>",
 * "org:<id>:user:<id>", "ip:<addr>"; names are deterministic so every isolate reaches the same object);
 * for a store tenant, the buckets its store holds (`take` of tenant-store/object.ts), so the routes the
 * Worker serves and those the store serves spend one budget.
 *
 * Lease mode: an isolate takes up to leaseSize(limit) tokens in one call and spends them locally,
 * so a hot key costs about 1/leaseSize DO calls per request. Tokens are debited in the object when
 * leased, so lease mode never admits more than strict mode would (overshoot 0); the price is that
 * tokens sitting in one isolate's lease are unavailable to others for up to LEASE_TTL_MS (they are
 * refunded on that isolate's next take). Refusals are cached locally until the object's retry time.
 */
export class DurableObjectRateLimiter implements RateLimiter {
	private readonly from: TakeFrom;

	constructor(buckets: DurableObjectNamespace<RateLimiterObject> | TakeFrom) {
		this.from = typeof buckets === "function" ? buckets : (key, req) => buckets.get(buckets.idFromName(key)).take(req);
	}

	private take(key: string, rule: LimitRule, want: number, partial: boolean, refund = 0): Promise<TakeResult> {
		return this.from(key, { limit: rule.limit, windowMs: rule.windowMs, want, partial, refund }).then(validate);
	}

	async limit(key: string, rule: LimitRule, mode: LimitMode): Promise<Decision> {
		if (mode === "strict") return decided(await this.take(key, rule, 1, false));
		const now = Date.now();
		const lease = leases.get(key);
		if (lease && lease.expiresAt > now && lease.tokens > 0) {
			lease.tokens--;
			return {
				allowed: true,
				limit: rule.limit,
				remaining: lease.remaining + lease.tokens,
				resetSeconds: seconds(lease.resetAt - now),
				retryAfterSeconds: 0,
			};
		}
		const b = blocked.get(key);
		// A refusal is cached until its retry time, unless the limit was raised since.
		if (b && b.until > now && rule.limit <= b.limit) {
			return {
				allowed: false,
				limit: b.limit,
				remaining: 0,
				resetSeconds: seconds(b.resetAt - now),
				retryAfterSeconds: Math.max(1, seconds(b.until - now)),
			};
		}
		// No shared in-flight promise between requests: on Workers a request must not wait on I/O that
		// another request started (it is cancelled with that request). Concurrent refills each take a
		// lease and pool their tokens below, so none is lost and none is spent twice.
		const refund = lease && lease.expiresAt <= now ? lease.tokens : 0;
		if (lease && lease.expiresAt <= now) leases.delete(key); // unspent tokens travel back with this take, once
		const r = await this.take(key, rule, leaseSize(rule.limit), true, refund);
		const at = Date.now();
		const current = leases.get(key);
		// Leased tokens were debited when granted, so spending them later never exceeds the bucket.
		const pool = (current?.tokens ?? 0) + r.granted;
		if (pool === 0) {
			blocked.set(key, { until: at + Math.max(1, r.retryAfterMs), limit: r.limit, resetAt: at + r.resetMs });
			return {
				allowed: false,
				limit: r.limit,
				remaining: 0,
				resetSeconds: seconds(r.resetMs),
				retryAfterSeconds: Math.max(1, seconds(r.retryAfterMs)),
			};
		}
		if (r.granted > 0) blocked.delete(key);
		// This request spends one token; the rest stays in the isolate's lease.
		leases.set(key, {
			tokens: pool - 1,
			expiresAt: r.granted > 0 || !current ? at + LEASE_TTL_MS : current.expiresAt,
			remaining: r.remaining,
			resetAt: at + r.resetMs,
		});
		return {
			allowed: true,
			limit: r.limit,
			remaining: r.remaining + pool - 1,
			resetSeconds: seconds(r.resetMs),
			retryAfterSeconds: 0,
		};
	}
}

/**
 * Token buckets held in memory by the one object that owns them (a tenant store: its tenant, member
 * and API-key buckets). The object runs one request at a time and is the only writer, so a take is
 * exact without a call to another object; a restarted object starts with full buckets. The Worker
 * takes from the same buckets (lease mode included) for the tenant routes it serves itself.
 */
export class LocalRateLimiter implements RateLimiter {
	private readonly buckets = new Map<string, Bucket>();

	constructor(private readonly now: () => number = Date.now) {}

	take(key: string, req: TakeRequest): TakeResult {
		const { bucket, result } = takeTokens(this.buckets.get(key) ?? null, req, this.now());
		this.buckets.set(key, bucket);
		if (this.buckets.size > 10_000) this.buckets.delete(this.buckets.keys().next().value as string);
		return result;
	}

	async limit(key: string, rule: LimitRule, _mode: LimitMode): Promise<Decision> {
		return decided(this.take(key, { ...rule, want: 1 }));
	}
}
