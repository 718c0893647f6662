import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";
import { createLogger, errorFields } from "../lib/logger";
import { configState } from "../env";
import { publish } from "../services/events-bus";
import type { AddResult } from "../services/usage-types";
import { alertMessages, METER_RETRY_MS, monthOf, UsageLedger, usageLedgerTables, WRITE_BEHIND_MS } from "../services/usage-ledger";

/**
 * Usage counters of one organization still served from the shared D1 tables (a tenant store keeps its
 * own, see tenant-store/object.ts): the UsageLedger in this object's SQLite. Isolates add counts in
 * small batches (middleware/meter.ts); an alarm writes the daily totals behind to D1 and reports
 * metered usage to Stripe. Crossing 50/80/100% of the monthly quota emits one audit entry and one
 * outgoing webhook event (usage.threshold_reached) per threshold per month.
 */
export class UsageCounter extends DurableObject<Env> {
	/** Written to storage once (the alarm needs it), not on every add. */
	private organizationId: string | null = null;
	private readonly ledger: UsageLedger;

	constructor(ctx: DurableObjectState, env: Env) {
		super(ctx, env);
		for (const statement of [...usageLedgerTables(""), "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"]) {
			ctx.storage.sql.exec(statement);
		}
		this.ledger = new UsageLedger(ctx.storage.sql, "");
	}

	async add(input: { organizationId: string; count: number; quota: number; at?: number }): Promise<AddResult> {
		if (this.organizationId !== input.organizationId) {
			this.ctx.storage.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('organization_id', ?)", input.organizationId);
			this.organizationId = input.organizationId;
		}
		const result = this.ledger.add(input.count, input.quota, input.at ?? Date.now());
		this.ledger.persist();
		await publish(this.env, alertMessages(input.organizationId, result));
		if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + WRITE_BEHIND_MS);
		return result;
	}

	async summary(month = monthOf(Date.now())) {
		return this.ledger.summary(month);
	}

	override async alarm(): Promise<void> {
		await this.flush();
	}

	/** The write-behind and the Stripe usage report; a failed report is tried again METER_RETRY_MS later. */
	async flush(): Promise<number> {
		const orgId = this.ctx.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'organization_id'").toArray()[0]?.value;
		if (!orgId) return 0;
		const { written, reportError } = await this.ledger.flush(this.env, orgId);
		if (reportError !== undefined) {
			createLogger(configState(this.env).config.LOG_LEVEL, { durableObject: "UsageCounter", organizationId: orgId }).warn(
				`usage report to Stripe failed; retrying in ${METER_RETRY_MS / 1000} s`,
				errorFields(reportError),
			);
			const alarm = await this.ctx.storage.getAlarm();
			if (alarm === null || alarm > Date.now() + METER_RETRY_MS) await this.ctx.storage.setAlarm(Date.now() + METER_RETRY_MS);
		}
		return written;
	}
}
