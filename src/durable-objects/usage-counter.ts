import { DurableObject } from "cloudflare:workers";
import { createDb } from "../db/client";
import { type Config, configState, type Env } from "../env";
import { createLogger, errorFields } from "../lib/logger";
import { meteredCustomer } from "../services/billing";
import { publish, systemAudit, tenantEvent } from "../services/events-bus";
import { reportMeterEvent } from "../services/stripe";

export const ALERT_THRESHOLDS = [50, 80, 100] as const;
/** Counts reach D1 (usage_daily) this long after they change, not on every request. */
export const WRITE_BEHIND_MS = 30_000;
/** A usage report Stripe did not take is sent again this long after (by the alarm). */
export const METER_RETRY_MS = 5 * 60_000;

export interface AddResult {
	month: string;
	monthUsed: number;
	quota: number;
	/** Thresholds (percent of quota) crossed by this call; each is reported once per month. */
	alerts: number[];
}

const dayOf = (t: number) => new Date(t).toISOString().slice(0, 10);
const monthOf = (t: number) => new Date(t).toISOString().slice(0, 7);
/** The first instant (ms) of the month `offset` months after `month` (YYYY-MM). */
const monthStart = (month: string, offset = 0) => {
	const [y, m] = month.split("-").map(Number) as [number, number];
	return Date.UTC(y, m - 1 + offset, 1);
};

/** A month's usage report to Stripe: what was reported, and the event written before it is sent. */
type MeterReportRow = {
	reported: number;
	pending_value: number | null;
	pending_identifier: string | null;
	pending_customer: string | null;
	pending_at: number | null;
};

/**
 * Usage counters for one organization: API calls per UTC day, summed per month, in the object's SQLite
 * storage. Isolates add counts in small batches (see middleware/meter.ts); an alarm writes the daily
 * totals behind to D1. Crossing 50/80/100% of the monthly quota emits one audit entry and one
 * outgoing webhook event (usage.threshold_reached) per threshold per month. For plans that bill usage,
 * the same alarm reports the month's growth to Stripe's Billing Meter (reportUsage).
 */
export class UsageCounter extends DurableObject<Env> {
	/** Written to storage once (the alarm needs it), not on every add. */
	private organizationId: string | null = null;

	constructor(ctx: DurableObjectState, env: Env) {
		super(ctx, env);
		ctx.storage.sql.exec(`
			CREATE TABLE IF NOT EXISTS counts (day TEXT PRIMARY KEY, count INTEGER NOT NULL, dirty INTEGER NOT NULL DEFAULT 1);
			CREATE TABLE IF NOT EXISTS alerts (month TEXT NOT NULL, threshold INTEGER NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (month, threshold));
			CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
			CREATE TABLE IF NOT EXISTS meter_reports (month TEXT PRIMARY KEY, reported INTEGER NOT NULL DEFAULT 0,
				pending_value INTEGER, pending_identifier TEXT, pending_customer TEXT, pending_at INTEGER);`);
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

	/**
	 * Write-behind: absolute daily totals to D1 (idempotent upserts), then clear the dirty marks; then
	 * the usage report to Stripe, when the organization's plan bills usage.
	 */
	override async alarm(): Promise<void> {
		await this.flush();
	}

	async flush(): Promise<number> {
		const orgId = this.ctx.storage.sql
			.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'organization_id'")
			.toArray()[0]?.value;
		if (!orgId) return 0;
		const dirty = this.ctx.storage.sql
			.exec<{ day: string; count: number }>("SELECT day, count FROM counts WHERE dirty = 1")
			.toArray();
		if (dirty.length > 0) await this.writeBehind(orgId, dirty);
		await this.reportUsage(orgId);
		return dirty.length;
	}

	private async writeBehind(orgId: string, dirty: { day: string; count: number }[]): Promise<void> {
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
	}

	/**
	 * Usage-based billing (STRIPE_METER_EVENT_NAME set, a plan with meteredBilling, a live Stripe
	 * subscription): what each month's count (this month and the last) grew by since its last report
	 * goes to Stripe's Billing Meter as one event. Exactly once: the event (value, identifier
	 * `usage:<org>:<month>:<count after it>`, customer, timestamp) is stored here before it is sent and
	 * sent unchanged until Stripe takes it (a resend is deduplicated by the identifier, which is also the
	 * Idempotency-Key); only then does the month's reported count move. Calls made while the organization
	 * is not billed this way (another plan, no Stripe customer) are marked reported without being sent.
	 * A failure is retried by the alarm METER_RETRY_MS later.
	 */
	private async reportUsage(organizationId: string): Promise<void> {
		const { config } = configState(this.env);
		const eventName = config.STRIPE_METER_EVENT_NAME;
		if (!eventName || !config.STRIPE_SECRET_KEY) return;
		const sql = this.ctx.storage.sql;
		const now = Date.now();
		const thisMonth = monthOf(now);
		const months = [monthOf(monthStart(thisMonth, -1)), thisMonth];
		let customer: string | null | undefined;
		try {
			for (const month of months) {
				const row = () =>
					sql.exec<MeterReportRow>("SELECT reported, pending_value, pending_identifier, pending_customer, pending_at FROM meter_reports WHERE month = ?", month).toArray()[0];
				if (row()?.pending_identifier) await this.sendPending(config, eventName, month, row() as MeterReportRow);
				const total = this.monthTotal(month);
				const reported = row()?.reported ?? 0;
				if (total <= reported) continue;
				if (customer === undefined) customer = await meteredCustomer(createDb(this.env.DB), organizationId);
				if (customer === null) {
					sql.exec(
						"INSERT INTO meter_reports (month, reported) VALUES (?, ?) ON CONFLICT (month) DO UPDATE SET reported = excluded.reported",
						month,
						total,
					);
					continue;
				}
				sql.exec(
					`INSERT INTO meter_reports (month, reported, pending_value, pending_identifier, pending_customer, pending_at) VALUES (?, ?, ?, ?, ?, ?)
					 ON CONFLICT (month) DO UPDATE SET pending_value = excluded.pending_value, pending_identifier = excluded.pending_identifier,
					 pending_customer = excluded.pending_customer, pending_at = excluded.pending_at`,
					month,
					reported,
					total - reported,
					`usage:${organizationId}:${month}:${total}`,
					customer,
					// Usage of a month already over is dated in it (its last second).
					Math.min(Math.floor(now / 1000), monthStart(month, 1) / 1000 - 1),
				);
				await this.sendPending(config, eventName, month, row() as MeterReportRow);
			}
		} catch (err) {
			createLogger(config.LOG_LEVEL, { durableObject: "UsageCounter", organizationId }).warn(
				`usage report to Stripe failed; retrying in ${METER_RETRY_MS / 1000} s`,
				errorFields(err),
			);
			const alarm = await this.ctx.storage.getAlarm();
			if (alarm === null || alarm > now + METER_RETRY_MS) await this.ctx.storage.setAlarm(now + METER_RETRY_MS);
		}
	}

	/** Sends a month's stored event; once Stripe has it (now or before), it counts as reported. */
	private async sendPending(config: Config, eventName: string, month: string, p: MeterReportRow): Promise<void> {
		await reportMeterEvent(config, {
			eventName,
			customerId: p.pending_customer ?? "",
			value: p.pending_value ?? 0,
			identifier: p.pending_identifier ?? "",
			timestamp: p.pending_at ?? 0,
		});
		this.ctx.storage.sql.exec(
			`UPDATE meter_reports SET reported = reported + pending_value, pending_value = NULL, pending_identifier = NULL,
			 pending_customer = NULL, pending_at = NULL WHERE month = ?`,
			month,
		);
	}
}
