import { sql } from "drizzle-orm";
import { runBatch } from "../../db/batch";
import type { Database } from "../../db/client";
import type { Env } from "../../env";
import { errorFields, type Logger } from "../../lib/logger";
import { clearAccessCache, invalidateAccess } from "../../services/access";
import { forgetKeys } from "../../services/api-keys";
import { outboxRows, relayOutbox } from "../../services/outbox";
import { applyClerkRegion } from "../../services/operator";
import { invalidateUser } from "../../services/users";
import { directoryChanged } from "../../tenant-store/directory";
import type { Planned } from "./planners";

/** Drops the isolate's cached access and user rows that an applied event changed. */
export function invalidateCaches(t: Planned): void {
	const p = t.plan;
	if (p.invalidate.all) {
		clearAccessCache();
		invalidateUser();
		forgetKeys();
	} else if (p.invalidate.orgId) {
		invalidateAccess(p.invalidate.orgId, p.invalidate.userId);
		// A membership change may have narrowed keys the member made (api-keys.ts keysWithinCreator).
		if (p.invalidate.userId) forgetKeys();
	}
}

/** Organizations told of custom role or permission changes per batch at most (a Worker invocation makes about 1,000 subrequests). */
const STORES_PER_BATCH = 500;

/**
 * Tells the stores of the organizations an applied batch changed (membership, organization, a custom role
 * or permission their members hold) to forget their mirrored directory answers, before the messages are
 * acked: once an event is consumed, the tenant's next request sees it (a removed member, or one whose role
 * lost a permission, gets 403). Past STORES_PER_BATCH organizations for a batch's role changes, and for changes to
 * users, the others' stores see it when their mirror expires (tenant-store/object.ts MIRROR_TTL_MS).
 */
export async function notifyStores(env: Env, applied: Planned[], logger: Logger): Promise<void> {
	const orgIds = new Set(applied.map((t) => t.plan.invalidate.orgId).filter((o): o is string => typeof o === "string"));
	for (const t of applied) {
		const storesOf = t.plan.invalidate.storesOf;
		const room = STORES_PER_BATCH - orgIds.size;
		if (!storesOf || room <= 0) continue;
		try {
			const [found] = await runBatch<{ organization_id: string }>(env.DB, [sql`${storesOf} LIMIT ${room}`]);
			for (const row of found?.results ?? []) orgIds.add(row.organization_id);
		} catch (err) {
			logger.warn("could not read which tenant stores a role change concerns; their mirrors expire", errorFields(err));
		}
	}
	for (const orgId of orgIds) {
		try {
			await directoryChanged(env, orgId);
		} catch (err) {
			logger.warn("could not tell the tenant store its directory changed", { orgId, ...errorFields(err) });
		}
	}
}

/**
 * Relays the outbox rows an applied batch wrote (the events' audit entries and outgoing events, see
 * planners.ts) to the tenant-events queue; what the queue refuses stays pending for the cron. The D1
 * writes are committed: a failure here must not make the batch run again, so it is logged.
 */
export async function relayApplied(env: Env, db: Database, results: D1Result[], logger: Logger): Promise<void> {
	const rows = outboxRows(results);
	try {
		await relayOutbox(env, db, rows, logger);
	} catch (err) {
		logger.error("could not relay the tenant events of applied webhooks; the cron sends them", { events: rows.length, ...errorFields(err) });
	}
}

/**
 * Applies Clerk's dataRegion to organizations an applied batch found as placeholders (SyncPlan.regionClaim).
 * The batch's D1 writes are committed, so a failure is logged, not retried: the region may then stay the
 * default, which an operator's PATCH changes while the tenant has no data.
 */
export async function applyRegionClaims(env: Env, db: Database, applied: Planned[], logger: Logger): Promise<void> {
	const orgIds = new Set(applied.map((t) => t.plan.regionClaim).filter((o): o is string => typeof o === "string"));
	for (const orgId of orgIds) {
		try {
			await applyClerkRegion(env, db, orgId, logger);
		} catch (err) {
			logger.error("applying Clerk's dataRegion failed (GET /api/admin/orgs/:orgId shows the region in effect)", { orgId, ...errorFields(err) });
		}
	}
}
