import { createDb } from "../db/client";
import { type Config, configState, type Env } from "../env";
import type { TenantEvent } from "../queue/tenant-events";
import { meteredCustomer } from "./billing";
import { systemAudit, tenantEvent } from "./events-bus";
import { reportMeterEvent } from "./stripe";
import type { AddResult } from "./usage-types";

export const ALERT_THRESHOLDS = [50, 80, 100] as const;
/** Counts reach D1 (usage_daily) this long after they change, not on every request. */
export const WRITE_BEHIND_MS = 30_000;
/** A usage report Stripe did not take is sent again this long after (by the alarm). */
export const METER_RETRY_MS = 5 * 60_000;

export const dayOf = (t: number) => new Date(t).toISOString().slice(0, 10);
export const monthOf = (t: number) => new Date(t).toISOString().slice(0, 7);
/** The first instant (ms) of the month `offset` months after `month` (YYYY-MM). */
export const monthStart = (month: string, offset = 0) => {
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
 * The ledger's tables, named with `prefix`: API calls per UTC day (dirty until written behind to D1),
 * the quota alerts sent per month, and each month's usage report to Stripe.
 */
export function usageLedgerTables(prefix: string): string[] {
	return [
		`CREATE TABLE IF NOT EXISTS ${prefix}counts (day TEXT PRIMARY KEY, count INTEGER NOT NULL, dirty INTEGER NOT NULL DEFAULT 1)`,
		`CREATE TABLE IF NOT EXISTS ${prefix}alerts (month TEXT NOT NULL, threshold INTEGER NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (month, threshold))`,
		`CREATE TABLE IF NOT EXISTS ${prefix}meter_reports (month TEXT PRIMARY KEY, reported INTEGER NOT NULL DEFAULT 0,
			pending_value INTEGER, pending_identifier TEXT, pending_customer TEXT, pending_at INTEGER)`,
	];
}

/** The audit entry and outgoing event of each threshold an add crossed (deterministic ids: a retry is deduplicated). */
export function alertMessages(organizationId: string, r: AddResult): TenantEvent[] {
	return r.alerts.flatMap((t) => {
		const data = { organizationId, month: r.month, threshold: t, used: r.monthUsed, quota: r.quota };
		return [
			systemAudit({
				id: `aud_usage_${organizationId}_${r.month}_${t}`,
				organizationId,
				action: "usage.threshold_reached",
				targetType: "usage",
				targetId: r.month,
				after: data,
			}),
			tenantEvent(organizationId, "usage.threshold_reached", data, `evt_usage_${organizationId}_${r.month}_${t}`),
		];
	});
}

/**
 * One organization's API-call counters in a Durable Object's SQLite: per UTC day, summed per month,
 * 50/80/100% alerts once per month, daily totals written behind to D1, and the month's growth reported
 * to Stripe's Billing Meter for plans that bill usage. The object is the counters' only writer, so the
 * month's total is read once and then kept in memory, and a quota check against it is exact. An add
 * changes memory; `persist` writes what was added since to SQLite (its caller decides how often: the
 * tenant store at most once a second, sparing a read request a write of its own).
 * Used by the tenant store (tables `usage_*`, every call counted in the object that serves it) and by
 * the UsageCounter object of tenants still on the shared D1 tables (its original table names).
 */
export class UsageLedger {
	private readonly totals = new Map<string, number>();
	/** Calls added per day and not yet persisted. */
	private readonly pending = new Map<string, number>();
	/** `month:threshold` of the alerts known to be recorded (read or written here). */
	private readonly alerted = new Set<string>();

	constructor(
		private readonly sql: SqlStorage,
		private readonly prefix: string,
	) {}

	private table(name: "counts" | "alerts" | "meter_reports"): string {
		return `${this.prefix}${name}`;
	}

	monthTotal(month: string): number {
		let total = this.totals.get(month);
		if (total === undefined) {
			total = this.sql.exec<{ n: number }>(`SELECT coalesce(sum(count), 0) AS n FROM ${this.table("counts")} WHERE day LIKE ?`, `${month}-%`).one().n;
			for (const [day, n] of this.pending) if (day.startsWith(month)) total += n;
			if (this.totals.size >= 4) this.totals.clear();
			this.totals.set(month, total);
		}
		return total;
	}

	/** Adds `count` calls at `at` (in memory until `persist`); the alerts this crossed are recorded and returned (the caller sends them). */
	add(count: number, quota: number, at: number): AddResult {
		const month = monthOf(at);
		const before = this.monthTotal(month);
		const n = Math.max(0, Math.floor(count));
		if (n > 0) {
			const day = dayOf(at);
			this.pending.set(day, (this.pending.get(day) ?? 0) + n);
			this.totals.set(month, before + n);
		}
		const monthUsed = before + n;
		const alerts: number[] = [];
		if (quota > 0) {
			for (const t of ALERT_THRESHOLDS) {
				// A threshold reached is looked up (and recorded) once per month in this object's life.
				if (monthUsed * 100 < t * quota || this.alerted.has(`${month}:${t}`)) continue;
				const inserted = this.sql
					.exec(`INSERT OR IGNORE INTO ${this.table("alerts")} (month, threshold, at) VALUES (?, ?, ?) RETURNING threshold`, month, t, at)
					.toArray();
				if (this.alerted.size >= 64) this.alerted.clear();
				this.alerted.add(`${month}:${t}`);
				if (inserted.length > 0) alerts.push(t);
			}
		}
		return { month, monthUsed, quota, alerts };
	}

	/** Whether calls were added since the last `persist`. */
	hasPending(): boolean {
		return this.pending.size > 0;
	}

	/** Writes the calls added since the last call into the day rows (marked dirty for the write-behind). */
	persist(): void {
		for (const [day, n] of this.pending) {
			this.sql.exec(
				`INSERT INTO ${this.table("counts")} (day, count, dirty) VALUES (?, ?, 1) ON CONFLICT (day) DO UPDATE SET count = count + excluded.count, dirty = 1`,
				day,
				n,
			);
		}
		this.pending.clear();
	}

	/** The month's calls per day. */
	summary(month: string): { month: string; used: number; daily: { day: string; count: number }[] } {
		this.persist();
		const daily = this.sql
			.exec<{ day: string; count: number }>(`SELECT day, count FROM ${this.table("counts")} WHERE day LIKE ? ORDER BY day`, `${month}-%`)
			.toArray()
			.map((r) => ({ day: r.day, count: r.count }));
		return { month, used: daily.reduce((s, d) => s + d.count, 0), daily };
	}

	/**
	 * Starts the ledger from counts kept elsewhere (the D1 rollups of the counter it replaces): each
	 * day's count, already written behind and already reported to Stripe, and the thresholds those
	 * counts had crossed marked as sent, so nothing is billed or announced twice.
	 */
	seed(days: { day: string; count: number }[], quota: number, at: number): void {
		this.persist();
		for (const d of days) {
			this.sql.exec(
				`INSERT INTO ${this.table("counts")} (day, count, dirty) VALUES (?, ?, 0) ON CONFLICT (day) DO UPDATE SET count = max(count, excluded.count)`,
				d.day,
				d.count,
			);
		}
		this.totals.clear();
		const months = [...new Set(days.map((d) => d.day.slice(0, 7)))];
		for (const month of months) {
			const total = this.monthTotal(month);
			this.sql.exec(
				`INSERT INTO ${this.table("meter_reports")} (month, reported) VALUES (?, ?) ON CONFLICT (month) DO UPDATE SET reported = max(reported, excluded.reported)`,
				month,
				total,
			);
			if (quota <= 0) continue;
			for (const t of ALERT_THRESHOLDS) {
				if (total * 100 >= t * quota) this.sql.exec(`INSERT OR IGNORE INTO ${this.table("alerts")} (month, threshold, at) VALUES (?, ?, ?)`, month, t, at);
			}
		}
	}

	/** Whether some day's count has not reached D1 yet. */
	hasDirty(): boolean {
		return this.hasPending() || this.sql.exec(`SELECT 1 FROM ${this.table("counts")} WHERE dirty = 1 LIMIT 1`).toArray().length > 0;
	}

	/**
	 * Write-behind: absolute daily totals to D1 (idempotent upserts), then clear the dirty marks; then
	 * the usage report to Stripe, when the organization's plan bills usage: `reportError` when that
	 * failed (the caller tries again METER_RETRY_MS later).
	 */
	async flush(env: Env, organizationId: string): Promise<{ written: number; reportError?: unknown }> {
		this.persist();
		const dirty = this.sql.exec<{ day: string; count: number }>(`SELECT day, count FROM ${this.table("counts")} WHERE dirty = 1`).toArray();
		if (dirty.length > 0) {
			const now = Date.now();
			await env.DB.batch(
				dirty.map((d) =>
					env.DB.prepare(
						`INSERT INTO usage_daily (organization_id, day, metric, count, updated_at) VALUES (?, ?, 'api_calls', ?, ?)
						 ON CONFLICT (organization_id, day, metric) DO UPDATE SET count = max(usage_daily.count, excluded.count), updated_at = excluded.updated_at`,
					).bind(organizationId, d.day, d.count, now),
				),
			);
			for (const d of dirty) this.sql.exec(`UPDATE ${this.table("counts")} SET dirty = 0 WHERE day = ? AND count = ?`, d.day, d.count);
		}
		try {
			await this.reportUsage(env, organizationId);
			return { written: dirty.length };
		} catch (err) {
			return { written: dirty.length, reportError: err };
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
	 */
	private async reportUsage(env: Env, organizationId: string): Promise<void> {
		const { config } = configState(env);
		const eventName = config.STRIPE_METER_EVENT_NAME;
		if (!eventName || !config.STRIPE_SECRET_KEY) return;
		const reports = this.table("meter_reports");
		const now = Date.now();
		const thisMonth = monthOf(now);
		let customer: string | null | undefined;
		for (const month of [monthOf(monthStart(thisMonth, -1)), thisMonth]) {
			const row = () =>
				this.sql
					.exec<MeterReportRow>(`SELECT reported, pending_value, pending_identifier, pending_customer, pending_at FROM ${reports} WHERE month = ?`, month)
					.toArray()[0];
			if (row()?.pending_identifier) await this.sendPending(config, eventName, month, row() as MeterReportRow);
			const total = this.monthTotal(month);
			const reported = row()?.reported ?? 0;
			if (total <= reported) continue;
			if (customer === undefined) customer = await meteredCustomer(createDb(env.DB), organizationId);
			if (customer === null) {
				this.sql.exec(`INSERT INTO ${reports} (month, reported) VALUES (?, ?) ON CONFLICT (month) DO UPDATE SET reported = excluded.reported`, month, total);
				continue;
			}
			this.sql.exec(
				`INSERT INTO ${reports} (month, reported, pending_value, pending_identifier, pending_customer, pending_at) VALUES (?, ?, ?, ?, ?, ?)
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
		this.sql.exec(
			`UPDATE ${this.table("meter_reports")} SET reported = reported + pending_value, pending_value = NULL, pending_identifier = NULL,
			 pending_customer = NULL, pending_at = NULL WHERE month = ?`,
			month,
		);
	}
}
