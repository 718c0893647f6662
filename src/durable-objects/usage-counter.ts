import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";
import { publish, systemAudit, tenantEvent } from "../services/events-bus";

export const ALERT_THRESHOLDS = [50, 80, 100] as const;
/** Counts reach D1 (usage_daily) this long after they change, not on every request. */
export const WRITE_BEHIND_MS = 30_000;

export interface AddResult {
	month: string;
	monthUsed: number;
	quota: number;
	/** Thresholds (percent of quota) crossed by this call; each is reported once per month. */
	alerts: number[];
}

const dayOf = (t: number) => new Date(t).toISOString().slice(0, 10);
const monthOf = (t: number) => new Date(t).toISOString().slice(0, 7);

/**
 * Usage counters for one organization: API calls per UTC day, summed per month, in the object's SQLite
 * storage. Isolates add counts in small batches (see middleware/meter.ts); an alarm writes the daily
 * totals behind to D1. Crossing 50/80/100% of the monthly quota emits one audit entry and one
 * outgoing webhook event (usage.threshold_reached) per threshold per month.
 */
export class UsageCounter extends DurableObject<Env> {
	/** Written to storage once (the alarm needs it), not on every add. */
	private organizationId: string | null = null;

	constructor(ctx: DurableObjectState, env: Env) {
		super(ctx, env);
		ctx.storage.sql.exec(`
			CREATE TABLE IF NOT EXISTS counts (day TEXT PRIMARY KEY, count INTEGER NOT NULL, dirty INTEGER NOT NULL DEFAULT 1);
			CREATE TABLE IF NOT EXISTS alerts (month TEXT NOT NULL, threshold INTEGER NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (month, threshold));
			CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);`);
	}

	private monthTotal(month: string): number {
		return this.ctx.storage.sql
			.exec<{ n: number }>("SELECT coalesce(sum(count), 0) AS n FROM counts WHERE day LIKE ?", `${month}-%`)
			.one().n;
	}

	async add(input: { organizationId: string; count: number; quota: number; at?: number }): Promise<AddResult> {
		const at = input.at ?? Date.now();
		const day = dayOf(at);
		const month = monthOf(at);
		const sql = this.ctx.storage.sql;
		if (this.organizationId !== input.organizationId) {
			sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('organization_id', ?)", input.organizationId);
			this.organizationId = input.organizationId;
		}
		if (input.count > 0) {
			sql.exec(
				"INSERT INTO counts (day, count, dirty) VALUES (?, ?, 1) ON CONFLICT (day) DO UPDATE SET count = count + excluded.count, dirty = 1",
				day,
				Math.floor(input.count),
			);
		}
		const monthUsed = this.monthTotal(month);
		const alerts: number[] = [];
		if (input.quota > 0) {
			for (const t of ALERT_THRESHOLDS) {
				if (monthUsed * 100 < t * input.quota) continue;
				const inserted = sql
					.exec("INSERT OR IGNORE INTO alerts (month, threshold, at) VALUES (?, ?, ?) RETURNING threshold", month, t, at)
					.toArray();
				if (inserted.length > 0) alerts.push(t);
			}
		}
		if (alerts.length > 0) {
			// Deterministic ids: a retried publish is deduplicated downstream.
			const messages = alerts.flatMap((t) => {
				const data = { organizationId: input.organizationId, month, threshold: t, used: monthUsed, quota: input.quota };
				return [
					systemAudit({
						id: `aud_usage_${input.organizationId}_${month}_${t}`,
						organizationId: input.organizationId,
						action: "usage.threshold_reached",
						targetType: "usage",
						targetId: month,
						after: data,
					}),
					tenantEvent(input.organizationId, "usage.threshold_reached", data, `evt_usage_${input.organizationId}_${month}_${t}`),
				];
			});
			await publish(this.env, messages);
		}
		if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + WRITE_BEHIND_MS);
		return { month, monthUsed, quota: input.quota, alerts };
	}

	async summary(month = monthOf(Date.now())): Promise<{ month: string; used: number; daily: { day: string; count: number }[] }> {
		const daily = this.ctx.storage.sql
			.exec<{ day: string; count: number }>("SELECT day, count FROM counts WHERE day LIKE ? ORDER BY day", `${month}-%`)
			.toArray()
			.map((r) => ({ day: r.day, count: r.count }));
		return { month, used: daily.reduce((s, d) => s + d.count, 0), daily };
	}

	/** Write-behind: absolute daily totals to D1 (idempotent upserts), then clear the dirty marks. */
	override async alarm(): Promise<void> {
		await this.flush();
	}

	async flush(): Promise<number> {
		const orgId = this.ctx.storage.sql
			.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'organization_id'")
			.toArray()[0]?.value;
		const dirty = this.ctx.storage.sql
			.exec<{ day: string; count: number }>("SELECT day, count FROM counts WHERE dirty = 1")
			.toArray();
		if (!orgId || dirty.length === 0) return 0;
		const now = Date.now();
		await this.env.DB.batch(
			dirty.map((d) =>
				this.env.DB.prepare(
					`INSERT INTO usage_daily (organization_id, day, metric, count, updated_at) VALUES (?, ?, 'api_calls', ?, ?)
					 ON CONFLICT (organization_id, day, metric) DO UPDATE SET count = max(usage_daily.count, excluded.count), updated_at = excluded.updated_at`,
				).bind(orgId, d.day, d.count, now),
			),
		);
		for (const d of dirty) {
			this.ctx.storage.sql.exec("UPDATE counts SET dirty = 0 WHERE day = ? AND count = ?", d.day, d.count);
		}
		return dirty.length;
	}
}
