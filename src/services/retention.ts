import { type SQL, sql } from "drizzle-orm";
import type { Database } from "../db/client";

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * How long raw webhook payloads (`events` rows), outgoing delivery logs (`webhook_deliveries` that
 * ended: succeeded or failed) and idempotency keys are kept: 7 days, then the cron deletes them.
 * Audit entries are never pruned. Events still queued and deliveries still pending or retrying are
 * kept whatever their age; idempotency keys are kept at least as long as they can be replayed (24 h).
 */
export const EVENT_RETENTION_DAYS = 7;
const IDEMPOTENCY_MIN_MS = DAY_MS;

/** Rows deleted per statement, and statements per table per run: at most 12 D1 queries a run. */
const PRUNE_BATCH = 500;
const PRUNE_ROUNDS = 4;

export interface PruneResult {
	events: number;
	deliveries: number;
	idempotencyKeys: number;
}

/** Deletes, oldest first, up to PRUNE_BATCH rows picked by `pick` (a SELECT rowid …); the count deleted. */
async function prune(db: Database, table: string, pick: SQL): Promise<number> {
	let total = 0;
	for (let round = 0; round < PRUNE_ROUNDS; round++) {
		const res = await db.run(sql`DELETE FROM ${sql.raw(table)} WHERE rowid IN (${pick} LIMIT ${PRUNE_BATCH})`);
		const n = res.meta.changes ?? 0;
		total += n;
		if (n < PRUNE_BATCH) break;
	}
	return total;
}

/**
 * Cron: prunes what is older than the retention period (`retentionDays`, default EVENT_RETENTION_DAYS)
 * at `now`, in bounded batches (PRUNE_BATCH rows a statement, PRUNE_ROUNDS statements a table), so one
 * invocation stays far below D1's 1,000 queries; what is left is taken by the next minute's run.
 */
export async function pruneExpired(db: Database, now = Date.now(), retentionDays = EVENT_RETENTION_DAYS): Promise<PruneResult> {
	const cutoff = now - retentionDays * DAY_MS;
	const keyCutoff = Math.min(cutoff, now - IDEMPOTENCY_MIN_MS);
	return {
		events: await prune(
			db,
			"events",
			sql`SELECT rowid FROM events WHERE received_at < ${cutoff} AND outcome <> 'queued' ORDER BY received_at`,
		),
		deliveries: await prune(
			db,
			"webhook_deliveries",
			sql`SELECT rowid FROM webhook_deliveries WHERE updated_at < ${cutoff} AND status IN ('succeeded', 'failed') ORDER BY updated_at`,
		),
		idempotencyKeys: await prune(
			db,
			"idempotency_keys",
			sql`SELECT rowid FROM idempotency_keys WHERE created_at < ${keyCutoff}
				AND (state = 'done' OR coalesce(lease_until, created_at) < ${now}) ORDER BY created_at`,
		),
	};
}
