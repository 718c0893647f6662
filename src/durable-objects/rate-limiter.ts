import { DurableObject } from "cloudflare:workers";
import { type Bucket, type TakeRequest, type TakeResult, takeTokens } from "../lib/token-bucket";

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
		const { bucket: b, result } = takeTokens(this.bucket, req, now);
		this.bucket = b;
		this.ctx.storage.sql.exec(
			"INSERT OR REPLACE INTO bucket (id, tokens, updated_at, lim, window_ms) VALUES (1, ?, ?, ?, ?)",
			b.tokens,
			b.updatedAt,
			b.limit,
			b.windowMs,
		);
		if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(now + Math.max(result.resetMs, b.windowMs));
		return result;
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
