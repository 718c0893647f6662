import type { Env } from "../env";
import type { Logger } from "../lib/logger";
import { type StoreRoute, storeStub } from "./directory";
import { LATEST_TENANT_SCHEMA } from "./migrations";

/**
 * The rollout nudge: a store applies a new schema version on its first call after the deploy that
 * ships it (tenant-store/object.ts migrate()); a store nobody calls would stay behind. The cron calls
 * idle stores in batches (their schemaVersion() applies what they lack) and records the version each
 * reports in `organizations.store_schema_version`, so the directory shows how far a rollout got and
 * a contraction (migrations/index.ts) ships only once every store is past it.
 */

/** Stores called per cron run at most. */
export const NUDGE_BATCH = 200;
/** Calls in flight at once. */
const NUDGE_CONCURRENCY = 20;
/** Organization ids per UPDATE (bound parameters: 2 + ids, of D1's 100). */
const UPDATE_CHUNK = 90;

// Where the last run stopped, so a run starts past stores that failed before instead of retrying the
// same ones first (module scope, best effort: a new isolate starts over from the lowest id).
let resumeAfter = "";

interface Pending {
	id: string;
	region: StoreRoute["region"];
}

/** Store organizations (not on the shared tables, not deleted) whose recorded version is behind, in id order within (after, upTo]. */
async function behind(db: D1Database, after: string, upTo: string | null, limit: number): Promise<Pending[]> {
	const { results } = await db
		.prepare(
			`SELECT id, data_region AS region FROM organizations
				WHERE id > ?1 AND (?2 IS NULL OR id <= ?2)
					AND (store_state IS NULL OR store_state = 'store') AND deleted_at IS NULL
					AND (store_schema_version IS NULL OR store_schema_version < ?3)
				ORDER BY id LIMIT ?4`,
		)
		.bind(after, upTo, LATEST_TENANT_SCHEMA, limit)
		.all<Pending>();
	return results;
}

export interface NudgeReport {
	/** Stores that answered, by the version they now run. */
	versions: Record<number, number>;
	/** Stores that did not answer (tried again by a later run). */
	failed: number;
}

/**
 * One run of the nudge: up to `limit` stores behind LATEST_TENANT_SCHEMA (keyset over organization
 * ids, continuing where the last run stopped and wrapping around), each asked for its schema version
 * (which migrates it), the answers recorded in the directory (never lowering a recorded version).
 */
export async function nudgeStores(env: Pick<Env, "DB" | "TENANT_STORE">, logger: Logger, limit = NUDGE_BATCH): Promise<NudgeReport> {
	const start = resumeAfter;
	const pending = await behind(env.DB, start, null, limit);
	if (pending.length < limit && start !== "") pending.push(...(await behind(env.DB, "", start, limit - pending.length)));
	const report: NudgeReport = { versions: {}, failed: 0 };
	const byVersion = new Map<number, string[]>();
	for (let i = 0; i < pending.length; i += NUDGE_CONCURRENCY) {
		const group = pending.slice(i, i + NUDGE_CONCURRENCY);
		const answers = await Promise.allSettled(group.map((o) => storeStub(env, o.id, o.region).schemaVersion()));
		answers.forEach((a, j) => {
			const id = (group[j] as Pending).id;
			if (a.status === "fulfilled") byVersion.set(a.value, [...(byVersion.get(a.value) ?? []), id]);
			else {
				report.failed += 1;
				logger.warn("tenant store did not answer the rollout nudge", { orgId: id, error: String(a.reason) });
			}
		});
	}
	for (const [version, ids] of byVersion) {
		report.versions[version] = ids.length;
		for (let i = 0; i < ids.length; i += UPDATE_CHUNK) {
			const chunk = ids.slice(i, i + UPDATE_CHUNK);
			await env.DB.prepare(
				`UPDATE organizations SET store_schema_version = max(coalesce(store_schema_version, 0), ?) WHERE id IN (${chunk.map(() => "?").join(", ")})`,
			)
				.bind(version, ...chunk)
				.run();
		}
	}
	resumeAfter = pending.length < limit ? "" : (pending[pending.length - 1]?.id ?? "");
	return report;
}
