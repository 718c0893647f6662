import { type SQL, sql } from "drizzle-orm";
import type { Env } from "../env";
import { errorFields, type Logger } from "../lib/logger";
import { UPGRADE_SETTLE_MS, UPGRADE_TABLES } from "./upgrade";

/**
 * Erasure of an offboarded tenant's rows in the shared D1 tenant tables. An operator's DELETE
 * /api/admin/orgs/:orgId wipes the tenant's store at once; what the shared tables still hold for it (all
 * of its data if it was never moved to a store, the copy kept as a fallback if it was) is deleted here,
 * by the cron, in chunks: a `shared_purges` row is queued in the batch that marks the organization deleted
 * (purgeWhenDeleted), and removed once every table in UPGRADE_TABLES holds none of its rows.
 *
 * - Nothing is deleted until UPGRADE_SETTLE_MS after the deletion: by then no isolate serves the tenant
 *   from a cached route, so no write still under way can add a row behind the purge.
 * - Each query deletes at most PURGE_CHUNK rows of one table (`rowid IN (… LIMIT n)` over an index that
 *   starts with organization_id); a table is done when a query deletes fewer. `next_table` keeps the place
 *   between runs; a run that overlaps another at worst deletes nothing from a table again.
 * - audit_logs refuses DELETE except for an organization whose `store_state` is 'deleted'
 *   (migrations/0021_shared_purges.sql): the chain is erased with the rest, as in the wiped store.
 */

/** Rows one query deletes at most. */
const PURGE_CHUNK = 500;
/** D1 queries a run makes at most (the cron's other parts share the invocation's 1,000). */
export const PURGE_QUERY_BUDGET = 100;
/** Organizations a run looks at. */
const PER_RUN = 10;

/**
 * Children first (there are no foreign keys between them; an interrupted purge leaves no orphan behind a parent),
 * then the tenant's rows left in D1's outbox (events never sent, or kept failed: audit bodies with addresses and
 * user agents, which operator health would count as failed for good). Appended last: a purge under way keeps its
 * place (next_table).
 */
const TABLES = [...UPGRADE_TABLES.map((t) => t.table).reverse(), "outbox"];

/**
 * Queues the purge of an organization's shared rows, in the batch that marks it deleted (store_state
 * 'deleted'): a repeat deletion starts it over from the first table, and its settle time anew.
 */
export function purgeWhenDeleted(organizationId: string, now: number): SQL {
	return sql`INSERT INTO shared_purges (organization_id, next_table, deleted_rows, created_at, updated_at)
		SELECT id, 0, 0, ${now}, ${now} FROM organizations WHERE id = ${organizationId} AND store_state = 'deleted'
		ON CONFLICT (organization_id) DO UPDATE SET next_table = 0, created_at = max(excluded.created_at, shared_purges.created_at + 1),
			updated_at = excluded.updated_at`;
}

export interface PurgeReport {
	/** Organizations with no row left in the shared tables, removed from shared_purges by this run. */
	organizations: number;
	/** Rows deleted by this run. */
	rows: number;
	/** Organizations left for a later run (this run's queries spent, or a failure). */
	pending: number;
}

interface PurgeRow {
	organization_id: string;
	next_table: number;
	deleted_rows: number;
	created_at: number;
}

/**
 * One run: the queued organizations settled for UPGRADE_SETTLE_MS, least recently worked on first, within
 * `queryBudget` D1 queries (`orgId`: only that one, for an operator's or a test's run).
 */
export async function purgeDeletedTenants(
	env: Pick<Env, "DB">,
	now: number,
	logger: Logger,
	opts: { orgId?: string; queryBudget?: number; chunkRows?: number } = {},
): Promise<PurgeReport> {
	const chunk = opts.chunkRows ?? PURGE_CHUNK;
	let budget = (opts.queryBudget ?? PURGE_QUERY_BUDGET) - 1;
	const report: PurgeReport = { organizations: 0, rows: 0, pending: 0 };
	const { results: queued } = await env.DB.prepare(
		`SELECT organization_id, next_table, deleted_rows, created_at FROM shared_purges WHERE created_at <= ?1 AND (?2 IS NULL OR organization_id = ?2)
			ORDER BY updated_at, organization_id LIMIT ?3`,
	)
		.bind(now - UPGRADE_SETTLE_MS, opts.orgId ?? null, PER_RUN)
		.all<PurgeRow>();
	for (const row of queued) {
		if (budget < 2) {
			report.pending++;
			continue;
		}
		const orgId = row.organization_id;
		let table = row.next_table;
		let deleted = 0;
		try {
			while (table < TABLES.length && budget > 1) {
				budget--;
				// RETURNING counts the table's own rows (D1's meta.changes also counts what its triggers changed).
				const { results } = await env.DB.prepare(
					// Only while the organization is deleted (nothing takes it back today; this keeps it so if something does).
					`DELETE FROM ${TABLES[table]} WHERE rowid IN (SELECT rowid FROM ${TABLES[table]} WHERE organization_id = ?1 LIMIT ?2)
						AND EXISTS (SELECT 1 FROM organizations WHERE id = ?1 AND store_state = 'deleted') RETURNING 1 AS x`,
				)
					.bind(orgId, chunk)
					.all();
				deleted += results.length;
				if (results.length < chunk) table++;
			}
		} catch (err) {
			logger.error("purging a deleted tenant's shared rows failed", { orgId, table: TABLES[table], ...errorFields(err) });
		}
		budget--;
		report.rows += deleted;
		if (table >= TABLES.length) {
			// Removed only if not queued again meanwhile (a repeat deletion moved created_at).
			await env.DB.prepare("DELETE FROM shared_purges WHERE organization_id = ? AND created_at = ?").bind(orgId, row.created_at).run();
			report.organizations++;
			logger.info("deleted tenant's shared rows purged", { orgId, rows: row.deleted_rows + deleted });
		} else {
			await env.DB.prepare(
				"UPDATE shared_purges SET next_table = ?, deleted_rows = deleted_rows + ?, updated_at = ? WHERE organization_id = ? AND created_at = ?",
			)
				.bind(table, deleted, Math.max(now, row.created_at + 1), orgId, row.created_at)
				.run();
			report.pending++;
		}
	}
	return report;
}
