import { sql } from "drizzle-orm";
import { runBatch } from "../db/batch";
import type { Database } from "../db/client";
import type { Env } from "../env";
import type { Logger } from "../lib/logger";
import { directoryChanged } from "../tenant-store/directory";
import { invalidateAccess } from "./access";
import { grantedPlanSql } from "./billing-sync";
import { systemAudit, tenantEvent } from "./events-bus";
import { outboxInsert, outboxRows, relayOutbox } from "./outbox";
import { LIVE_STATUSES_SQL, PAST_DUE_GRACE_MS, PERIOD_END_LEEWAY_MS } from "./plans";

/** Organizations moved per cron run (one D1 statement each, in one batch). */
const LAPSED_BATCH = 50;

/**
 * Cron: organizations whose plan is no longer paid for fall back to what their subscriptions still
 * grant (free if none). A subscription stops granting its plan when its period (the trial's end while
 * trialing) ended more than PERIOD_END_LEEWAY_MS ago without a renewal event, or when it has been
 * past_due for longer than PAST_DUE_GRACE_MS. So a lost customer.subscription.deleted (or a renewal
 * that never paid) cannot keep a paid plan forever; a late event that renews it restores the plan.
 * Each change is audited (plan.changed, actor system) and sent to the organization's webhooks, through
 * the outbox (written in the change's batch, relayed after it).
 * Returns the organizations changed.
 */
export async function expireLapsedPlans(env: Env, db: Database, logger: Logger, now = Date.now()): Promise<string[]> {
	// Subscriptions still live in their status whose period or grace ran out (index on status, current_period_end),
	// in organizations whose stored plan is more than their subscriptions now grant.
	const candidates = await db.all<{ organizationId: string; plan: string }>(sql`
		SELECT o.id AS organizationId, o.plan AS plan FROM organizations o
		WHERE o.deleted_at IS NULL AND o.plan <> 'free' AND o.id IN (
			SELECT organization_id FROM subscriptions WHERE status IN (${LIVE_STATUSES_SQL})
				AND (current_period_end <= ${now - PERIOD_END_LEEWAY_MS}
					OR (status = 'past_due' AND past_due_since <= ${now - PAST_DUE_GRACE_MS})))
			AND o.plan <> ${grantedPlanSql(sql`o.id`, now)}
		LIMIT ${LAPSED_BATCH}`);
	if (candidates.length === 0) return [];
	// The UPDATE re-checks: a renewal applied meanwhile (or a concurrent run) leaves the row alone. Each
	// organization's plan.changed entry and event are outbox rows ahead of its UPDATE, under the same
	// condition and with the plan it sets (both evaluated on the same state), so written exactly when it applies.
	const statements = candidates.flatMap((c) => {
		const granted = grantedPlanSql(c.organizationId, now);
		const applies = sql`EXISTS (SELECT 1 FROM organizations WHERE id = ${c.organizationId} AND plan = ${c.plan} AND plan <> ${granted})`;
		// `plan` is set in the batch to the plan the UPDATE sets.
		const data = { organizationId: c.organizationId, plan: c.plan, previousPlan: c.plan, reason: "subscription_lapsed" };
		const audit = systemAudit({
			organizationId: c.organizationId,
			action: "plan.changed",
			targetType: "organization",
			targetId: c.organizationId,
			before: { plan: c.plan },
			after: data,
		});
		return [
			outboxInsert(audit, { set: { "$.after.plan": granted }, when: applies }),
			outboxInsert(tenantEvent(c.organizationId, "plan.changed", data), { set: { "$.data.plan": granted }, when: applies }),
			sql`UPDATE organizations SET plan = ${granted}, updated_at = ${now}
				WHERE id = ${c.organizationId} AND plan = ${c.plan} AND plan <> ${granted}
				RETURNING id, plan`,
		];
	});
	const results = await runBatch(db.$client, statements);
	const changed: string[] = [];
	results.forEach((r, i) => {
		const row = i % 3 === 2 ? (r.results[0] as { id: string } | undefined) : undefined;
		if (!row) return;
		changed.push(row.id);
		invalidateAccess(row.id);
	});
	await relayOutbox(env, db, outboxRows(results), logger);
	for (const orgId of changed) await directoryChanged(env, orgId);
	if (changed.length > 0) logger.info("lapsed plans fell back", { organizations: changed.length });
	return changed;
}
