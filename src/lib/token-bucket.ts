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
}

/**
 * One take from a bucket (null: a new, full one), refilled continuously at limit/window up to `now`: the
 * bucket as it is after the take, and what was granted. A plan change takes effect at once: the bucket is
 * clamped to the new capacity.
 */
export function takeTokens(bucket: Bucket | null, req: TakeRequest, now: number): { bucket: Bucket; result: TakeResult } {
	const limit = Math.max(1, Math.floor(req.limit));
	const windowMs = Math.max(1, Math.floor(req.windowMs));
	const rate = limit / windowMs;
	const b = bucket ?? { tokens: limit, updatedAt: now, limit, windowMs };
	// Refilled at the rate it had; a raised limit adds its extra capacity at once (a lowered one clamps).
	b.tokens = Math.min(limit, b.tokens + Math.max(0, now - b.updatedAt) * (b.limit / b.windowMs) + Math.max(0, limit - b.limit));
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
			retryAfterMs: granted > 0 ? 0 : Math.ceil((Math.min(want, limit) - b.tokens) / rate),
		},
	};
}
