import type { Env } from "../env";
import { errorFields, type Logger } from "../lib/logger";
import { forgetStoreRoute, readPlacement, storeStub, TRANSIENT_TTL_MS } from "./directory";
import { type KeysetTable, keysetChunk } from "./records";

/**
 * The upgrade job: moves each organization still served from the shared D1 tables
 * (`organizations.store_state = 'd1'`) into its own tenant store, in bounded steps the cron takes
 * every minute (runScheduled), resumable after any interruption. Progress is one `store_upgrades` row
 * per organization:
 *
 * 1. `waiting`: the organization is set `migrating` (writes answer 503, reads still come from D1, its
 *    tenant events wait in the outbox). Nothing is copied until UPGRADE_SETTLE_MS later, so every
 *    isolate has dropped its cached 'd1' route and writes already under way on the shared tables ended.
 * 2. `copying`: the store is emptied of any earlier attempt and put in import mode (beginImport); each
 *    table's rows of the organization are copied in keyset chunks (`detail` holds the cursor, saved at
 *    the end of each run), inserted with INSERT OR IGNORE, so re-copying a chunk is harmless.
 * 3. verification: row counts per table (D1 COUNT against the store's COUNT and maintained counters)
 *    and the audit chain's head (seq and hash). Equal: the store leaves import mode, the organization
 *    is flipped to 'store' and the row is `done`. Different: copied again (at most MAX_ATTEMPTS times),
 *    then `failed` and the organization goes back to 'd1' (served from the shared tables as before,
 *    never flipped); it is not picked again until an operator deletes the failed row.
 *
 * The shared tables' rows are kept: an operator deletes them once satisfied (README, "Operating tenant
 * stores").
 */

/** Phase 2 starts at least this long after phase 1: the cached 'd1' route's lifetime plus a request's. */
export const UPGRADE_SETTLE_MS = TRANSIENT_TTL_MS + 60_000;
/** Rows per D1 query (two or three bound parameters each, whatever the size). */
const COPY_CHUNK = 250;
/** D1 queries the job makes per run at most (D1 allows 1,000 per invocation; the cron does other work too). */
export const UPGRADE_QUERY_BUDGET = 300;
/** Organizations being moved at once (each answers 503 to writes meanwhile, so few at a time). */
const MAX_IN_FLIGHT = 5;
/** Copy-and-verify rounds before an upgrade is given up (verification never passed). */
const MAX_ATTEMPTS = 3;
/** Runs that may fail with an error (store or D1 unreachable) before an upgrade is given up. */
const MAX_ERRORS = 10;

/**
 * The tables moved, parents first, each with its keyset (an index of the shared table that starts
 * with organization_id; `rowid` is every index's implicit last column). `prunable`: the retention cron
 * may delete the shared table's old rows while the copy runs, so the store may hold more, never fewer.
 * The shared `outbox` is not moved: its pending rows are re-sent by the cron and applied in the store.
 */
export const UPGRADE_TABLES: readonly (KeysetTable & { prunable?: boolean })[] = [
	{ table: "categories", keys: ["created_at", "id"] },
	{ table: "products", keys: ["created_at", "id"] },
	{ table: "variants", keys: ["sku"] },
	{ table: "orders", keys: ["created_at", "id"] },
	{ table: "order_items", keys: ["order_id", "rowid"] },
	{ table: "order_status_history", keys: ["order_id", "at", "rowid"] },
	{ table: "idempotency_keys", keys: ["key"], prunable: true },
	{ table: "audit_logs", keys: ["seq"] },
	{ table: "audit_checkpoints", keys: ["rowid"] },
	{ table: "webhook_endpoints", keys: ["created_at", "rowid"] },
	{ table: "webhook_deliveries", keys: ["endpoint_id", "created_at", "rowid"], prunable: true },
];

type Phase = "waiting" | "copying" | "done" | "failed" | "abandoned";

interface AuditHead {
	seq: number;
	hash: string;
}

/** What `store_upgrades.detail` holds (JSON). */
interface Progress {
	/** Index in UPGRADE_TABLES of the table being copied (its length: verification is next). */
	table: number;
	/** Keyset position in that table (null: from its start). */
	after: unknown[] | null;
	/** Copy-and-verify rounds so far. */
	attempts: number;
	/** The store was emptied and put in import mode for this upgrade (once: a later round only adds what is missing). */
	begun?: boolean;
	errors: number;
	/** The last error or verification difference. */
	error?: string;
	/** Once done: what was verified. */
	counts?: Record<string, number>;
	auditHead?: AuditHead | null;
}

interface UpgradeRow {
	organization_id: string;
	phase: Phase;
	copied: number;
	detail: string | null;
	started_at: number;
	updated_at: number;
}

export interface UpgradeReport {
	/** Organizations set 'migrating' by this run. */
	started: number;
	/** Rows inserted into stores by this run. */
	copied: number;
	/** Organizations flipped to their store by this run. */
	flipped: number;
	/** Organizations given up (back on the shared tables) by this run. */
	failed: number;
}

export interface UpgradeOptions {
	/** Only this organization (an operator's or a test's run); default: every one, oldest upgrade first. */
	orgId?: string;
	/** D1 queries this run may make (default UPGRADE_QUERY_BUDGET). */
	queryBudget?: number;
	/** Rows per copy query (default 250). */
	chunkRows?: number;
}

/** D1 queries left for this run. */
class Budget {
	constructor(private left: number) {}
	take(n: number): boolean {
		if (this.left < n) return false;
		this.left -= n;
		return true;
	}
}

type UpgradeEnv = Pick<Env, "DB" | "TENANT_STORE">;

const emptyProgress = (attempts: number): Progress => ({ table: 0, after: null, attempts, errors: 0 });

function parseProgress(detail: string | null): Progress {
	if (!detail) return emptyProgress(0);
	return { ...emptyProgress(0), ...(JSON.parse(detail) as Partial<Progress>) };
}

/**
 * One run of the upgrade job at `now`: advances the upgrades under way (oldest first), then starts
 * new ones up to MAX_IN_FLIGHT, within UPGRADE_QUERY_BUDGET D1 queries. Safe to run at any time, any
 * number of times, concurrently too: each step is claimed on the row's `updated_at`, and copying is
 * idempotent.
 */
export async function runStoreUpgrades(
	env: UpgradeEnv,
	now: number,
	logger: Logger,
	opts: UpgradeOptions = {},
): Promise<UpgradeReport> {
	const budget = new Budget((opts.queryBudget ?? UPGRADE_QUERY_BUDGET) - 1);
	const chunkRows = opts.chunkRows ?? COPY_CHUNK;
	const report: UpgradeReport = { started: 0, copied: 0, flipped: 0, failed: 0 };
	const { results: rows } = await env.DB.prepare(
		`SELECT * FROM store_upgrades WHERE phase IN ('waiting', 'copying') AND (?1 IS NULL OR organization_id = ?1)
			ORDER BY started_at, organization_id LIMIT ?2`,
	)
		.bind(opts.orgId ?? null, MAX_IN_FLIGHT * 2)
		.all<UpgradeRow>();
	for (const row of rows) {
		try {
			await advance(env, row, now, { budget, chunkRows }, report, logger);
		} catch (err) {
			logger.error("tenant store upgrade step failed", { orgId: row.organization_id, ...errorFields(err) });
		}
	}
	const inFlight = rows.length - report.flipped - report.failed;
	if (inFlight < MAX_IN_FLIGHT && budget.take(1)) report.started = await start(env, now, MAX_IN_FLIGHT - inFlight, budget, opts.orgId);
	return report;
}

/** Phase 1 for up to `n` organizations on the shared tables (not given up before): 'migrating' and a `waiting` row. */
async function start(env: UpgradeEnv, now: number, n: number, budget: Budget, only?: string): Promise<number> {
	const { results } = await env.DB.prepare(
		`SELECT o.id FROM organizations o WHERE o.store_state = 'd1' AND o.deleted_at IS NULL AND (?1 IS NULL OR o.id = ?1)
			AND NOT EXISTS (SELECT 1 FROM store_upgrades u WHERE u.organization_id = o.id AND u.phase = 'failed')
			ORDER BY o.id LIMIT ?2`,
	)
		.bind(only ?? null, n)
		.all<{ id: string }>();
	let started = 0;
	for (const { id } of results) {
		if (!budget.take(3)) break;
		// One atomic batch: a row left under way for an organization that is back on 'd1' (put back by
		// hand) is stale and abandoned; the organization becomes 'migrating' with a fresh `waiting` row.
		const [, flip] = await env.DB.batch([
			env.DB.prepare(
				`UPDATE store_upgrades SET phase = 'abandoned', updated_at = ?2 WHERE organization_id = ?1 AND phase IN ('waiting', 'copying')
					AND EXISTS (SELECT 1 FROM organizations WHERE id = ?1 AND store_state = 'd1')`,
			).bind(id, now),
			env.DB.prepare("UPDATE organizations SET store_state = 'migrating' WHERE id = ? AND store_state = 'd1'").bind(id),
			env.DB.prepare(
				`INSERT INTO store_upgrades (organization_id, phase, copied, detail, started_at, updated_at)
					SELECT ?1, 'waiting', 0, NULL, ?2, ?2 WHERE EXISTS (SELECT 1 FROM organizations WHERE id = ?1 AND store_state = 'migrating')
					ON CONFLICT (organization_id) DO UPDATE SET phase = 'waiting', copied = 0, detail = NULL,
						started_at = excluded.started_at, updated_at = excluded.updated_at
					WHERE store_upgrades.phase NOT IN ('waiting', 'copying')`,
			).bind(id, now),
		]);
		forgetStoreRoute(id);
		if ((flip?.meta.changes ?? 0) > 0) started += 1;
	}
	return started;
}

/** Writes the row's progress (the claim: only if nobody else moved it since `row.updated_at`). */
async function save(env: UpgradeEnv, row: UpgradeRow, phase: Phase, progress: Progress, now: number): Promise<boolean> {
	const res = await env.DB.prepare(
		"UPDATE store_upgrades SET phase = ?, copied = ?, detail = ?, updated_at = ? WHERE organization_id = ? AND updated_at = ?",
	)
		.bind(phase, row.copied, JSON.stringify(progress), Math.max(now, row.updated_at + 1), row.organization_id, row.updated_at)
		.run();
	if (res.meta.changes === 0) return false;
	row.phase = phase;
	row.updated_at = Math.max(now, row.updated_at + 1);
	return true;
}

/** Gives an upgrade up: the organization is served from the shared tables again (it never was from the store). */
async function giveUp(env: UpgradeEnv, row: UpgradeRow, progress: Progress, now: number, logger: Logger): Promise<void> {
	await env.DB.batch([
		env.DB.prepare("UPDATE organizations SET store_state = 'd1' WHERE id = ? AND store_state = 'migrating'").bind(row.organization_id),
		env.DB.prepare("UPDATE store_upgrades SET phase = 'failed', detail = ?, updated_at = ? WHERE organization_id = ?").bind(
			JSON.stringify(progress),
			now,
			row.organization_id,
		),
	]);
	forgetStoreRoute(row.organization_id);
	logger.error("tenant store upgrade given up; the organization stays on the shared tables", {
		orgId: row.organization_id,
		attempts: progress.attempts,
		error: progress.error,
	});
}

async function advance(
	env: UpgradeEnv,
	row: UpgradeRow,
	now: number,
	{ budget, chunkRows }: { budget: Budget; chunkRows: number },
	report: UpgradeReport,
	logger: Logger,
): Promise<void> {
	const orgId = row.organization_id;
	if (row.phase === "waiting" && now < row.started_at + UPGRADE_SETTLE_MS) return;
	// The organization's state, and the progress saved at the end.
	if (!budget.take(2)) return;
	const org = await readPlacement(env.DB, orgId);
	const progress = parseProgress(row.detail);
	if (org?.state !== "migrating") {
		// Flipped or given up by another run, deleted by an operator, or put back by hand: nothing to move.
		await save(env, row, org?.state === "store" || org?.state === null ? "done" : "abandoned", progress, now);
		return;
	}
	const stub = storeStub(env, orgId, org.region);
	// This upgrade, as the store knows it (its row's start; the store is emptied once per upgrade, `begun`): a
	// run that overlaps another on it does not wipe what that one imported, and a run of an upgrade abandoned
	// and started again cannot end the newer one's import.
	const upgrade = String(row.started_at);
	// The flip: the organization is served by its store from now on, with the store's figures saved as verified.
	const flip = async (stats: { schemaVersion: number; counts: Record<string, number>; auditHead: AuditHead | null }): Promise<boolean> => {
		const [res] = await env.DB.batch([
			env.DB.prepare("UPDATE organizations SET store_state = 'store', store_schema_version = ? WHERE id = ? AND store_state = 'migrating'").bind(
				stats.schemaVersion,
				orgId,
			),
		]);
		forgetStoreRoute(orgId);
		if ((res?.meta.changes ?? 0) === 0) return false;
		await save(env, row, "done", { ...progress, error: undefined, counts: stats.counts, auditHead: stats.auditHead }, now);
		report.flipped += 1;
		logger.info("tenant moved to its store", { orgId, copied: row.copied, attempts: progress.attempts });
		return true;
	};
	// The store already serves (finishImport ran: verification had passed) while the organization is still
	// 'migrating': the flip failed after it. Flipped now; giving up would send the tenant back to the shared
	// tables beside an active store, and every later attempt would be refused ("already holds data"). The
	// store's own figures stand for the verification (its alarm may have pruned expired idempotency keys).
	const flipIfServed = async (): Promise<boolean> => {
		const served = await stub.stats().catch(() => null);
		return served?.state === "active" && served.organizationId === orgId && (await flip(served));
	};
	try {
		if (row.phase === "waiting") {
			if (!budget.take(1)) return;
			if (!(await save(env, row, "copying", emptyProgress(progress.attempts + 1), now))) return;
			Object.assign(progress, emptyProgress(progress.attempts + 1));
		}
		if (!progress.begun) {
			// Whatever an abandoned attempt left in the store goes; saved with the first chunk's progress.
			await stub.beginImport(orgId, true, upgrade);
			progress.begun = true;
		}
		while (progress.table < UPGRADE_TABLES.length) {
			const spec = UPGRADE_TABLES[progress.table] as (typeof UPGRADE_TABLES)[number];
			if (!budget.take(1)) {
				await save(env, row, "copying", progress, now);
				return;
			}
			const chunk = await keysetChunk(env.DB, spec, orgId, progress.after, chunkRows);
			if (chunk.rows.length > 0) {
				const written = await stub.importRows(spec.table, chunk.rows as Record<string, SqlStorageValue>[]);
				row.copied += written;
				report.copied += written;
			}
			progress.after = chunk.next;
			if (chunk.next === null) progress.table += 1;
		}
		// Verification (one batch: a count per table and the audit head), the flip, the final save.
		if (!budget.take(UPGRADE_TABLES.length + 2)) {
			await save(env, row, "copying", progress, now);
			return;
		}
		const difference = await verify(env, stub, orgId);
		if (difference === null) {
			const stats = await stub.finishImport(upgrade);
			if (await flip(stats)) return;
			// Not flipped: if an operator deleted the tenant meanwhile, what this import copied goes too.
			if ((await readPlacement(env.DB, orgId))?.state === "deleted") await stub.wipe(true);
			await save(env, row, "abandoned", { ...progress, error: undefined, counts: stats.counts, auditHead: stats.auditHead }, now);
			return;
		}
		progress.error = difference;
		if (await flipIfServed()) return;
		if (progress.attempts >= MAX_ATTEMPTS) {
			await giveUp(env, row, progress, now, logger);
			report.failed += 1;
			return;
		}
		// Copy again (INSERT OR IGNORE adds only what is missing), then verify again.
		logger.warn("tenant store upgrade did not verify; copying again", { orgId, difference });
		await save(env, row, "copying", { ...emptyProgress(progress.attempts + 1), begun: true, errors: progress.errors, error: difference }, now);
	} catch (err) {
		if (await flipIfServed()) return;
		progress.errors += 1;
		progress.error = err instanceof Error ? err.message : String(err);
		if (progress.errors >= MAX_ERRORS) {
			await giveUp(env, row, progress, now, logger);
			report.failed += 1;
		} else {
			await save(env, row, row.phase, progress, now);
		}
		throw err;
	}
}

/**
 * Whether the store holds the organization's shared-table rows: per table the same count (at least the
 * same for prunable tables), the store's maintained counters equal to its counts, and the same audit
 * head. Null when everything matches, else what differs.
 */
async function verify(env: UpgradeEnv, stub: ReturnType<typeof storeStub>, orgId: string): Promise<string | null> {
	const results = await env.DB.batch<Record<string, unknown>>([
		...UPGRADE_TABLES.map((t) => env.DB.prepare(`SELECT count(*) AS n FROM ${t.table} WHERE organization_id = ?`).bind(orgId)),
		env.DB.prepare("SELECT seq, hash FROM audit_logs WHERE organization_id = ? ORDER BY seq DESC LIMIT 1").bind(orgId),
	]);
	const d1Counts = Object.fromEntries(UPGRADE_TABLES.map((t, i) => [t.table, Number(results[i]?.results[0]?.n ?? 0)]));
	const d1Head = (results[UPGRADE_TABLES.length]?.results[0] ?? null) as AuditHead | null;
	const storeCounts = await stub.tableCounts(UPGRADE_TABLES.map((t) => t.table));
	const stats = await stub.stats();
	const differences: string[] = [];
	for (const t of UPGRADE_TABLES) {
		const [d1, store] = [d1Counts[t.table] ?? 0, storeCounts[t.table] ?? 0];
		if (t.prunable ? store < d1 : store !== d1) differences.push(`${t.table}: d1 ${d1}, store ${store}`);
	}
	for (const [name, value] of Object.entries(stats.counts)) {
		if (name in storeCounts && value !== storeCounts[name]) differences.push(`${name}: counter ${value}, rows ${storeCounts[name]}`);
	}
	if ((d1Head?.seq ?? null) !== (stats.auditHead?.seq ?? null) || (d1Head?.hash ?? null) !== (stats.auditHead?.hash ?? null)) {
		differences.push(`audit head: d1 ${d1Head?.seq ?? "none"}/${d1Head?.hash ?? ""}, store ${stats.auditHead?.seq ?? "none"}/${stats.auditHead?.hash ?? ""}`);
	}
	return differences.length === 0 ? null : differences.join("; ");
}
