import { DurableObject } from "cloudflare:workers";

interface TakeRequest {
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

interface Bucket {
	tokens: number;
	updatedAt: number;
	limit: number;
	windowMs: number;
}

/**
 * Token bucket per limit key (one object per tenant, tenant+user or client IP; never a global one).
 * Capacity `limit`, refilled continuously at limit/window. A Durable Object runs one RPC at a time,
 * so `take` is atomic: with N tokens and M > N concurrent callers exactly N are granted.
 * State lives in the object's SQLite storage; an alarm deletes it once the bucket is full and idle.
 */
export class RateLimiter extends DurableObject {
	private bucket: Bucket | null = null;
	/** RPC calls served since this instance started (benchmarks read it through stats()). */
	private calls = 0;

	private schemaReady = false;

	constructor(ctx: DurableObjectState, env: unknown) {
		super(ctx, env as never);
		this.ensureSchema();
		const row = ctx.storage.sql
			.exec<{ tokens: number; updated_at: number; lim: number; window_ms: number }>("SELECT * FROM bucket WHERE id = 1")
			.toArray()[0];
		if (row) this.bucket = { tokens: row.tokens, updatedAt: row.updated_at, limit: row.lim, windowMs: row.window_ms };
	}

	/** deleteAll() (alarm clean-up) drops the table too, so it is recreated on the next use. */
	private ensureSchema() {
		if (this.schemaReady) return;
		this.ctx.storage.sql.exec(
			"CREATE TABLE IF NOT EXISTS bucket (id INTEGER PRIMARY KEY CHECK (id = 1), tokens REAL NOT NULL, updated_at INTEGER NOT NULL, lim INTEGER NOT NULL, window_ms INTEGER NOT NULL)",
		);
		this.schemaReady = true;
	}

	async take(req: TakeRequest): Promise<TakeResult> {
		this.calls++;
		this.ensureSchema();
		const now = Date.now();
		const limit = Math.max(1, Math.floor(req.limit));
		const windowMs = Math.max(1, Math.floor(req.windowMs));
		const rate = limit / windowMs;
		let b = this.bucket;
		if (!b) {
			b = { tokens: limit, updatedAt: now, limit, windowMs };
		} else {
			b.tokens = Math.min(limit, b.tokens + Math.max(0, now - b.updatedAt) * (b.limit / b.windowMs));
			b.updatedAt = now;
			// A plan change takes effect at once: the bucket is clamped to the new capacity.
			b.limit = limit;
			b.windowMs = windowMs;
		}
		if (req.refund && req.refund > 0) b.tokens = Math.min(limit, b.tokens + Math.floor(req.refund));
		const want = Math.max(1, Math.floor(req.want));
		const available = Math.floor(b.tokens + 1e-9);
		const granted = available >= want ? want : req.partial ? available : 0;
		b.tokens -= granted;
		this.bucket = b;
		this.ctx.storage.sql.exec(
			"INSERT OR REPLACE INTO bucket (id, tokens, updated_at, lim, window_ms) VALUES (1, ?, ?, ?, ?)",
			b.tokens,
			b.updatedAt,
			b.limit,
			b.windowMs,
		);
		const resetMs = Math.ceil((limit - b.tokens) / rate);
		if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(now + Math.max(resetMs, windowMs));
		return {
			granted,
			limit,
			remaining: Math.max(0, Math.floor(b.tokens + 1e-9)),
			resetMs,
			retryAfterMs: granted > 0 ? 0 : Math.ceil((Math.min(want, limit) - b.tokens) / rate),
		};
	}

	async stats(): Promise<{ calls: number }> {
		return { calls: this.calls };
	}

	/** Deletes the state of an idle, refilled bucket; otherwise checks again when it will be full. */
	override async alarm(): Promise<void> {
		const b = this.bucket;
		if (!b) {
			await this.ctx.storage.deleteAll();
			this.schemaReady = false;
			return;
		}
		const now = Date.now();
		const tokens = Math.min(b.limit, b.tokens + (now - b.updatedAt) * (b.limit / b.windowMs));
		if (tokens >= b.limit - 1e-9) {
			this.bucket = null;
			await this.ctx.storage.deleteAll();
			this.schemaReady = false;
		} else {
			await this.ctx.storage.setAlarm(now + Math.ceil((b.limit - tokens) / (b.limit / b.windowMs)));
		}
	}
}
