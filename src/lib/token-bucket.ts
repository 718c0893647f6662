export interface TakeRequest {
	/** Bucket capacity: requests allowed per window. */
	limit: number;
	windowMs: number;
	/** Tokens wanted: 1 in strict mode, the lease size in lease mode. */
	want: number;
	/** Lease mode: grant what is available up to `want` (at least 1), instead of all-or-nothing. */
	partial?: boolean;
	/** Unspent tokens of an expired lease, given back before taking. */
	refund?: number;
}

export interface TakeResult {
	granted: number;
	limit: number;
	/** Tokens left in the bucket after this grant. */
	remaining: number;
	/** ms until the bucket is full again. */
	resetMs: number;
	/** ms until one token is available (0 when granted). */
	retryAfterMs: number;
}

export interface Bucket {
	tokens: number;
	updatedAt: number;
	limit: number;
	windowMs: number;
	/**
	 * The highest limit this bucket was taken at since it was last full at a steady limit (absent: `limit`).
	 * Held in memory only: a bucket read back from storage starts from its limit.
	 */
	peak?: number;
}

/**
 * One take from a bucket (null: a new, full one), refilled continuously at limit/window up to `now`: the
 * bucket as it is after the take, and what was granted. A plan change takes effect at once: a lowered limit
 * clamps the bucket, a raised one adds its extra capacity. Callers that disagree on the limit for a while
 * (isolates holding the limits from before a change, for up to their cache's lifetime) never grant more
 * than the highest of their limits: extra capacity is added only for a limit above every limit the bucket
 * was taken at since it was last full at a steady limit (`peak`), so alternating takes at 1,200 and 120 do
 * not refill it each time.
 * `retryAfterMs` is the wait for what the take needed: one token for a partial take (a lease), `want`
 * (at most the limit) otherwise.
 */
export function takeTokens(bucket: Bucket | null, req: TakeRequest, now: number): { bucket: Bucket; result: TakeResult } {
	const limit = Math.max(1, Math.floor(req.limit));
	const windowMs = Math.max(1, Math.floor(req.windowMs));
	const rate = limit / windowMs;
	const b = bucket ?? { tokens: limit, updatedAt: now, limit, windowMs };
	const peak = Math.max(b.peak ?? b.limit, b.limit);
	// Refilled at the rate it had; a limit above the peak adds its extra capacity at once (a lowered one clamps).
	b.tokens = Math.min(limit, b.tokens + Math.max(0, now - b.updatedAt) * (b.limit / b.windowMs) + Math.max(0, limit - peak));
	// Full at the limit it had before this take: a higher limit seen earlier is forgotten.
	b.peak = limit === b.limit && b.tokens >= limit - 1e-9 ? limit : Math.max(peak, limit);
	b.updatedAt = now;
	b.limit = limit;
	b.windowMs = windowMs;
	if (req.refund && req.refund > 0) b.tokens = Math.min(limit, b.tokens + Math.floor(req.refund));
	const want = Math.max(1, Math.floor(req.want));
	const available = Math.floor(b.tokens + 1e-9);
	const granted = available >= want ? want : req.partial ? available : 0;
	b.tokens -= granted;
	return {
		bucket: b,
		result: {
			granted,
			limit,
			remaining: Math.max(0, Math.floor(b.tokens + 1e-9)),
			resetMs: Math.ceil((limit - b.tokens) / rate),
			retryAfterMs: granted > 0 ? 0 : Math.ceil(((req.partial ? 1 : Math.min(want, limit)) - b.tokens) / rate),
		},
	};
}
