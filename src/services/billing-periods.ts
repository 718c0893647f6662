import { sql } from "drizzle-orm";
import { runBatch } from "../db/batch";
import type { Database } from "../db/client";
import type { Env } from "../env";
import type { Logger } from "../lib/logger";
import type { TenantEvent } from "../queue/tenant-events";
import { directoryChanged } from "../tenant-store/directory";
import { invalidateAccess } from "./access";
import { grantedPlanSql } from "./billing-sync";
import { publish, systemAudit, tenantEvent } from "./events-bus";
import { LIVE_SUBSCRIPTION_STATUSES, PAST_DUE_GRACE_MS, PERIOD_END_LEEWAY_MS } from "./plans";

/** Organizations moved per cron run (one D1 statement each, in one batch). */
const LAPSED_BATCH = 50;

/**
 * Cron: organizations whose plan is no longer paid for fall back to what their subscriptions still
 * grant (free if none). A subscription stops granting its plan when its period (the trial's end while
 * trialing) ended more than PERIOD_END_LEEWAY_MS ago without a renewal event, or when it has been
 * past_due for longer than PAST_DUE_GRACE_MS. So a lost customer.subscription.deleted (or a renewal
 * that never paid) cannot keep a paid plan forever; a late event that renews it restores the plan.
 * Each change is audited (plan.changed, actor system) and sent to the organization's webhooks.
 * Returns the organizations changed.
 */
export async function expireLapsedPlans(env: Env, db: Database, logger: Logger, now = Date.now()): Promise<string[]> {
	const live = sql.join(
		LIVE_SUBSCRIPTION_STATUSES.map((v) => sql`${v}`),
		sql`, `,
	);
	// Subscriptions still live in their status whose period or grace ran out (index on status, current_period_end),
	// in organizations whose stored plan is more than their subscriptions now grant.
	const candidates = await db.all<{ organizationId: string; plan: string }>(sql`
		SELECT o.id AS organizationId, o.plan AS plan FROM organizations o
		WHERE o.deleted_at IS NULL AND o.plan <> 'free' AND o.id IN (
			SELECT organization_id FROM subscriptions WHERE status IN (${live})
				AND (current_period_end <= ${now - PERIOD_END_LEEWAY_MS}
					OR (status = 'past_due' AND past_due_since <= ${now - PAST_DUE_GRACE_MS})))
			AND o.plan <> ${grantedPlanSql(sql`o.id`, now)}
		LIMIT ${LAPSED_BATCH}`);
	if (candidates.length === 0) return [];
	// The UPDATE re-checks: a renewal applied meanwhile (or a concurrent run) leaves the row alone.
	const results = await runBatch<{ id: string; plan: string }>(
		db.$client,
		candidates.map(
			(c) => sql`UPDATE organizations SET plan = ${grantedPlanSql(c.organizationId, now)}, updated_at = ${now}
				WHERE id = ${c.organizationId} AND plan = ${c.plan} AND plan <> ${grantedPlanSql(c.organizationId, now)}
				RETURNING id, plan`,
		),
	);
	const changed: string[] = [];
	const messages: TenantEvent[] = [];
	results.forEach((r, i) => {
		const row = r.results[0];
		const before = candidates[i];
		if (!row || !before) return;
		changed.push(row.id);
		invalidateAccess(row.id);
		const data = { organizationId: row.id, plan: row.plan, previousPlan: before.plan, reason: "subscription_lapsed" };
		messages.push(
			systemAudit({ organizationId: row.id, action: "plan.changed", targetType: "organization", targetId: row.id, before: { plan: before.plan }, after: data }),
			tenantEvent(row.id, "plan.changed", data),
		);
	});
	await publish(env, messages, logger);
	for (const orgId of changed) await directoryChanged(env, orgId);
	if (changed.length > 0) logger.info("lapsed plans fell back", { organizations: changed.length });
	return changed;
}
