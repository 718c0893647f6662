import { type SQL, sql } from "drizzle-orm";
import { runBatch, typedRow } from "../db/batch";
import type { Database } from "../db/client";
import { apiKeys, paymentOrders } from "../db/schema";
import type { Env } from "../env";
import type { Logger } from "../lib/logger";
import { ApiError } from "../errors";
import { changeRegion, directoryChanged, forgetStoreRoute, readPlacement, storeStub } from "../tenant-store/directory";
import { purgeWhenDeleted } from "../tenant-store/purge";
import { type ExportRecord, paged, recordStream, storeRecords, stored } from "../tenant-store/records";
import { UPGRADE_TABLES } from "../tenant-store/upgrade";
import { invalidateAccess } from "./access";
import { endBillingWhenDeleted } from "./billing-endings";
import { apiKeyView } from "./api-keys";
import { listOrgEvents } from "./events-log";
import { auditEntry, tenantEvent } from "./events-bus";
import { listMembers } from "./identity";
import { type ChangeLog, collectOutbox, outboxInsert } from "./outbox";
import { paymentOrderView } from "./payments";
import { limitsFor, type PlanId, type PlanLimits, planOf } from "./plans";

/**
 * Operator views and overrides (OPERATOR_USER_IDS): the system's health from the events, outbox and
 * endpoint tables, and one organization's plan, limits, suspension and data region, so no operator task
 * needs SQL.
 */

/** A pending event older than this makes the health report "degraded". */
const STALE_PENDING_MS = 5 * 60_000;

interface QueueHealth {
	queue: "webhook-events" | "tenant-events";
	/** Events accepted but not yet processed (webhook-events: outcome queued; tenant-events: outbox rows pending). */
	backlog: number;
	/** Age of the oldest of them, ms; null when none. */
	oldestPendingAgeMs: number | null;
	/** Dead-lettered and kept failed (webhook-events: outcome failed; tenant-events: outbox rows failed). */
	failed: number;
}

export interface OperatorHealth {
	status: "ok" | "degraded";
	checkedAt: number;
	d1: { ok: boolean; latencyMs: number };
	queues: QueueHealth[];
	outgoingEndpoints: { failing: number; disabled: number };
}

/** Health: D1 reachability and latency, queue backlogs and failures, failing outgoing endpoints; one D1 batch. */
export async function operatorHealth(db: Database): Promise<OperatorHealth> {
	const started = Date.now();
	let results: D1Result[];
	try {
		results = await runBatch(db.$client, [
			sql`SELECT outcome, count(*) AS n, min(received_at) AS oldest FROM events WHERE outcome IN ('queued', 'failed') GROUP BY outcome`,
			sql`SELECT status, count(*) AS n, min(created_at) AS oldest FROM outbox GROUP BY status`,
			// The shared table's endpoints of tenants still served from it (a moved tenant's rows stay behind until
			// an operator deletes them; its store reports its own).
			sql`SELECT coalesce(sum(e.status = 'enabled' AND e.consecutive_failures > 0), 0) AS failing,
				coalesce(sum(e.status = 'disabled'), 0) AS disabled FROM webhook_endpoints e
				JOIN organizations o ON o.id = e.organization_id AND o.store_state IN ('d1', 'migrating')`,
			// Tenants served by their own store keep their outbox and endpoints there: what they reported.
			sql`SELECT coalesce(sum(outbox_pending), 0) AS pending, min(outbox_oldest) AS oldest, coalesce(sum(outbox_failed), 0) AS failed,
				coalesce(sum(endpoints_failing), 0) AS failing, coalesce(sum(endpoints_disabled), 0) AS disabled FROM store_health`,
		]);
	} catch {
		const empty = (queue: QueueHealth["queue"]): QueueHealth => ({ queue, backlog: 0, oldestPendingAgeMs: null, failed: 0 });
		return {
			status: "degraded",
			checkedAt: started,
			d1: { ok: false, latencyMs: Date.now() - started },
			queues: [empty("webhook-events"), empty("tenant-events")],
			outgoingEndpoints: { failing: 0, disabled: 0 },
		};
	}
	const now = Date.now();
	type Count = { n: number; oldest: number | null };
	const byKey = (r: D1Result | undefined, key: string) =>
		new Map(((r?.results ?? []) as (Count & Record<string, unknown>)[]).map((row) => [row[key] as string, row]));
	const events = byKey(results[0], "outcome");
	const outbox = byKey(results[1], "status");
	const stores = (results[3]?.results[0] ?? {}) as { pending?: number; oldest?: number | null; failed?: number; failing?: number; disabled?: number };
	const age = (c: Count | undefined) => (c?.oldest == null ? null : Math.max(0, now - c.oldest));
	const oldest = [outbox.get("pending")?.oldest, stores.oldest].filter((t): t is number => t != null);
	const queues: QueueHealth[] = [
		{
			queue: "webhook-events",
			backlog: events.get("queued")?.n ?? 0,
			oldestPendingAgeMs: age(events.get("queued")),
			failed: events.get("failed")?.n ?? 0,
		},
		{
			queue: "tenant-events",
			backlog: (outbox.get("pending")?.n ?? 0) + (stores.pending ?? 0),
			oldestPendingAgeMs: oldest.length > 0 ? Math.max(0, now - Math.min(...oldest)) : null,
			failed: (outbox.get("failed")?.n ?? 0) + (stores.failed ?? 0),
		},
	];
	const shared = (results[2]?.results[0] ?? { failing: 0, disabled: 0 }) as { failing: number; disabled: number };
	const endpoints = { failing: shared.failing + (stores.failing ?? 0), disabled: shared.disabled + (stores.disabled ?? 0) };
	const degraded = queues.some((q) => q.failed > 0 || (q.oldestPendingAgeMs ?? 0) > STALE_PENDING_MS);
	return {
		status: degraded ? "degraded" : "ok",
		checkedAt: now,
		d1: { ok: true, latencyMs: now - started },
		queues,
		outgoingEndpoints: { failing: endpoints.failing, disabled: endpoints.disabled },
	};
}

type DataRegion = "default" | "eu";

interface Overrides {
	rateLimitPerMinute: number | null;
	userRateLimitPerMinute: number | null;
	monthlyApiQuota: number | null;
	seatLimit: number | null;
}

export interface OperatorOrg {
	id: string;
	name: string | null;
	slug: string | null;
	plan: PlanId;
	dataRegion: DataRegion;
	suspended: boolean;
	suspendedAt: number | null;
	/** Per-organization overrides (null: the plan's value). */
	overrides: Overrides;
	/** The limits in effect: the plan's, with the overrides applied. */
	limits: PlanLimits;
	/** Whether the tenant has data (any record of its store's tables, audit entries included): the data region is then fixed. */
	hasData: boolean;
	createdAt: number;
	updatedAt: number;
	deletedAt: number | null;
}

export type OperatorOrgPatch = Partial<Overrides & { plan: PlanId; suspended: boolean; dataRegion: DataRegion }>;

/**
 * Whether the tenant has data: asked of its store when it has one (`inStore`: any record, see
 * storeHasData), else of the shared tables (a row of any tenant table the upgrade job would move).
 */
const hasData = (orgId: string, inStore?: boolean): SQL =>
	inStore !== undefined
		? sql`${inStore ? 1 : 0}`
		: sql`(${sql.join(
				UPGRADE_TABLES.map((t) => sql`EXISTS (SELECT 1 FROM ${sql.identifier(t.table)} WHERE organization_id = ${orgId})`),
				sql` OR `,
			)})`;

interface OrgRow {
	id: string;
	name: string | null;
	slug: string | null;
	plan: string;
	dataRegion: DataRegion;
	suspendedAt: number | null;
	rateLimitPerMinute: number | null;
	userRateLimitPerMinute: number | null;
	monthlyQuota: number | null;
	seatLimit: number | null;
	hasData: number;
	createdAt: number;
	updatedAt: number;
	deletedAt: number | null;
}

const selectOrg = (orgId: string, inStore?: boolean): SQL => sql`SELECT id, name, slug, plan, data_region AS dataRegion, suspended_at AS suspendedAt,
	rate_limit_per_minute AS rateLimitPerMinute, user_rate_limit_per_minute AS userRateLimitPerMinute,
	monthly_quota AS monthlyQuota, seat_limit AS seatLimit, ${hasData(orgId, inStore)} AS hasData,
	created_at AS createdAt, updated_at AS updatedAt, deleted_at AS deletedAt
	FROM organizations WHERE id = ${orgId}`;

function view(r: OrgRow): OperatorOrg {
	const overrides: Overrides = {
		rateLimitPerMinute: r.rateLimitPerMinute,
		userRateLimitPerMinute: r.userRateLimitPerMinute,
		monthlyApiQuota: r.monthlyQuota,
		seatLimit: r.seatLimit,
	};
	return {
		id: r.id,
		name: r.name,
		slug: r.slug,
		plan: planOf(r.plan),
		dataRegion: r.dataRegion,
		suspended: r.suspendedAt !== null,
		suspendedAt: r.suspendedAt,
		overrides,
		limits: limitsFor(r.plan, { ...overrides, monthlyQuota: r.monthlyQuota }),
		hasData: r.hasData === 1,
		createdAt: r.createdAt,
		updatedAt: r.updatedAt,
		deletedAt: r.deletedAt,
	};
}

async function readOrg(db: Database, orgId: string, inStore?: boolean): Promise<OrgRow> {
	const [res] = await runBatch<OrgRow>(db.$client, [selectOrg(orgId, inStore)]);
	const row = res?.results[0];
	if (!row) throw new ApiError("NOT_FOUND", "organization not found");
	return row;
}

/** One organization as an operator sees it (deleted ones too, with deletedAt); 404 unknown. */
export async function getOperatorOrg(db: Database, orgId: string, inStore?: boolean): Promise<OperatorOrg> {
	return view(await readOrg(db, orgId, inStore));
}

const COLUMNS: Record<keyof Omit<OperatorOrgPatch, "suspended">, string> = {
	plan: "plan",
	rateLimitPerMinute: "rate_limit_per_minute",
	userRateLimitPerMinute: "user_rate_limit_per_minute",
	monthlyApiQuota: "monthly_quota",
	seatLimit: "seat_limit",
	dataRegion: "data_region",
};

/**
 * Applies an operator's overrides to an organization in one batch with its audit entry
 * (`organization.operator_updated`, before/after of the fields changed), written to the outbox (see
 * `log`). A data region change applies only while the tenant has no data (409 otherwise, nothing
 * changed); its audit entry is applied after it, so in the new region's store, and this isolate
 * forgets the tenant's store route. The access cache of this isolate is invalidated, so the change
 * applies at once here and within the cache's 5 s elsewhere. 404 unknown or deleted organization.
 */
export async function updateOperatorOrg(
	db: Database,
	orgId: string,
	patch: OperatorOrgPatch,
	log: ChangeLog,
	inStore?: boolean,
): Promise<OperatorOrg> {
	const current = await readOrg(db, orgId, inStore);
	if (current.deletedAt !== null) throw new ApiError("NOT_FOUND", "organization not found");
	const was = view(current);
	const now = Date.now();
	const sets: SQL[] = [];
	const before: Record<string, unknown> = {};
	const after: Record<string, unknown> = {};
	for (const [key, column] of Object.entries(COLUMNS) as [keyof typeof COLUMNS, string][]) {
		const value = patch[key];
		if (value === undefined) continue;
		sets.push(sql`${sql.identifier(column)} = ${value}`);
		before[key] = key === "plan" || key === "dataRegion" ? was[key] : was.overrides[key];
		after[key] = value;
	}
	if (patch.suspended !== undefined) {
		sets.push(patch.suspended ? sql`suspended_at = coalesce(suspended_at, ${now})` : sql`suspended_at = NULL`);
		before.suspended = was.suspended;
		after.suspended = patch.suspended;
	}
	if (sets.length === 0) return was;
	const regionChange = patch.dataRegion !== undefined && patch.dataRegion !== was.dataRegion;
	// Both statements see the same state inside the batch: the entry is written exactly when the update applies.
	const applies = sql`EXISTS (SELECT 1 FROM organizations WHERE id = ${orgId} AND deleted_at IS NULL) AND ${regionChange ? sql`NOT ${hasData(orgId, inStore)}` : sql`1`}`;
	const audit = auditEntry(log.meta, {
		organizationId: orgId,
		action: "organization.operator_updated",
		targetType: "organization",
		targetId: orgId,
		before,
		after,
	});
	// A plan change is announced as Stripe's and the cron's are (plan.changed), with the plan it replaced as the batch saw it.
	const stored = sql`(SELECT plan FROM organizations WHERE id = ${orgId})`;
	const planEvent =
		patch.plan === undefined
			? []
			: [
					outboxInsert(
						tenantEvent(orgId, "plan.changed", { organizationId: orgId, plan: patch.plan, previousPlan: was.plan, reason: "operator_override" }),
						{ set: { "$.data.previousPlan": stored }, when: sql`${applies} AND ${stored} <> ${patch.plan}` },
					),
				];
	const results = await runBatch(db.$client, [
		outboxInsert(audit, { when: applies }),
		...planEvent,
		sql`UPDATE organizations SET ${sql.join(sets, sql`, `)}, updated_at = ${now} WHERE id = ${orgId} AND ${applies}`,
		selectOrg(orgId, inStore),
	]);
	collectOutbox(log, results);
	invalidateAccess(orgId);
	const [update, selected] = results.slice(-2);
	const row = selected?.results[0] as OrgRow | undefined;
	if (!row || row.deletedAt !== null) throw new ApiError("NOT_FOUND", "organization not found");
	if (update?.meta.changes === 0) throw new ApiError("CONFLICT", "dataRegion can only be changed while the organization has no data");
	if (regionChange) forgetStoreRoute(orgId);
	return view(row);
}

/**
 * Clerk's dataRegion "eu" for an organization whose directory row was a placeholder when the event came (a
 * session token created it first): API.md takes the region from Clerk when the organization is created.
 * Applied as an operator's PATCH is: only while the tenant has no data, its default store retired in the
 * same step as that check; otherwise the region stays and a warning says so. Answers whether it applied.
 */
export async function applyClerkRegion(env: Env, db: Database, orgId: string, logger: Logger): Promise<boolean> {
	const changed = await changeRegion(env, orgId, "eu", async (inStore) => {
		const res = await runBatch(db.$client, [
			sql`UPDATE organizations SET data_region = 'eu', updated_at = ${Date.now()}
				WHERE id = ${orgId} AND data_region = 'default' AND deleted_at IS NULL AND NOT ${hasData(orgId, inStore)}`,
		]);
		return (res[0]?.meta.changes ?? 0) > 0;
	});
	if (changed) {
		forgetStoreRoute(orgId);
		invalidateAccess(orgId);
		await directoryChanged(env, orgId);
		logger.info("organization's data region set from Clerk", { orgId, dataRegion: "eu" });
	} else {
		logger.warn("Clerk's dataRegion eu not applied: the tenant already has data (or its region was set)", { orgId });
	}
	return changed;
}

// --- export and offboarding -------------------------------------------------------------------------

/** Where the organization's data is (read from the directory's primary, not a cached route); 404 unknown. */
async function placement(db: Database, orgId: string) {
	const row = await readPlacement(db.$client, orgId);
	if (!row) throw new ApiError("NOT_FOUND", "organization not found");
	return row;
}

const PAGE = 100;

/**
 * The organization's records in the directory (D1): the organization as operators see it, members,
 * API keys, payment orders and events as the API renders them; invitations, subscriptions, payment
 * transactions, daily usage and revoked keys (never a key's hash) as stored.
 */
async function* directoryRecords(db: Database, orgId: string, hasData: boolean | undefined, keyId: string): AsyncGenerator<ExportRecord[]> {
	yield [{ type: "organization", data: await getOperatorOrg(db, orgId, hasData) }];
	let cursor: string | null | undefined;
	do {
		const p = await listMembers(db, orgId, { cursor: cursor ?? undefined, limit: PAGE });
		yield p.data.map((data) => ({ type: "member", data }));
		cursor = p.nextCursor;
	} while (cursor);
	const d1 = db.$client;
	yield* paged(d1, { table: "invitations", keys: ["created_at", "rowid"] }, orgId, stored("invitation"));
	yield* paged(d1, { table: "api_keys", keys: ["created_at", "id"] }, orgId, (rows) =>
		rows.map((raw) => {
			if (raw.revoked_at === null) return { type: "api_key", data: apiKeyView(typedRow(apiKeys, raw)) };
			const { hash: _h, previous_hash: _p, ...data } = raw;
			return { type: "revoked_api_key", data };
		}),
	);
	yield* paged(d1, { table: "subscriptions", keys: ["rowid"] }, orgId, stored("subscription"));
	yield* paged(d1, { table: "payment_orders", keys: ["created_at", "rowid"] }, orgId, (rows) =>
		rows.map((r) => ({ type: "payment_order", data: paymentOrderView(typedRow(paymentOrders, r), keyId) })),
	);
	yield* paged(d1, { table: "payment_transactions", keys: ["payment_order_id", "rowid"] }, orgId, stored("payment_transaction"));
	yield* paged(d1, { table: "usage_daily", keys: ["day", "metric"] }, orgId, stored("usage_day"));
	cursor = undefined;
	do {
		const p = await listOrgEvents(db, orgId, { cursor: cursor ?? undefined, limit: PAGE });
		yield p.data.map((data) => ({ type: "event", data }));
		cursor = p.nextCursor;
	} while (cursor);
}

/** One stream after the other: a source is opened only once the previous one is read to its end. */
function concatStreams(sources: (() => Promise<ReadableStream<Uint8Array>>)[]): ReadableStream<Uint8Array> {
	let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
	return new ReadableStream<Uint8Array>({
		async pull(controller) {
			for (;;) {
				if (!reader) {
					const next = sources.shift();
					if (!next) {
						controller.close();
						return;
					}
					reader = (await next()).getReader();
				}
				const { done, value } = await reader.read();
				if (!done) {
					controller.enqueue(value);
					return;
				}
				reader = undefined;
			}
		},
		async cancel(reason) {
			await reader?.cancel(reason);
		},
	});
}

/**
 * A tenant's whole data as NDJSON (GET /api/admin/orgs/:orgId/export, API.md): its directory records,
 * then its store's (streamed from the store object; from the shared tables for an organization the
 * upgrade job has not moved yet). 404 unknown or deleted (its store was wiped).
 */
export async function exportTenant(env: Pick<Env, "TENANT_STORE">, db: Database, orgId: string, keyId = ""): Promise<ReadableStream<Uint8Array>> {
	const where = await placement(db, orgId);
	if (where.state === "deleted") throw new ApiError("NOT_FOUND", "organization deleted: its data was wiped");
	const inStore = where.state === null || where.state === "store";
	const stub = storeStub(env, orgId, where.region);
	const hasData = inStore ? await stub.hasRecords() : undefined;
	const sources = [
		async () => recordStream(directoryRecords(db, orgId, hasData, keyId)),
		inStore ? () => stub.exportNdjson() : async () => recordStream(storeRecords(db.$client, orgId, { outbox: false })),
	];
	return concatStreams(sources);
}

export interface Offboarded {
	status: "deleted";
	organizationId: string;
	deletedAt: number;
}

/**
 * Offboards a tenant (DELETE /api/admin/orgs/:orgId): the directory row is kept, marked deleted
 * (`store_state` 'deleted', `deleted_at`), so every route of the organization answers 404; an upgrade
 * under way is abandoned; its billing at Stripe is queued to end (services/billing-endings.ts: the cron
 * expires its Checkouts and cancels its subscriptions), and so are its rows in the shared D1 tenant tables
 * (tenant-store/purge.ts: the cron deletes them a minute later); then the tenant's store is wiped.
 * Idempotent: a repeat wipes again (retry a failed call).
 */
export async function offboardTenant(env: Pick<Env, "TENANT_STORE">, db: Database, orgId: string, now = Date.now()): Promise<Offboarded> {
	const where = await placement(db, orgId);
	const [, , , , read] = await runBatch<{ deletedAt: number }>(db.$client, [
		sql`UPDATE organizations SET store_state = 'deleted', deleted_at = coalesce(deleted_at, ${now}), updated_at = ${now} WHERE id = ${orgId}`,
		endBillingWhenDeleted(orgId, now),
		purgeWhenDeleted(orgId, now),
		sql`UPDATE store_upgrades SET phase = 'abandoned', updated_at = ${now} WHERE organization_id = ${orgId} AND phase IN ('waiting', 'copying')`,
		sql`SELECT deleted_at AS deletedAt FROM organizations WHERE id = ${orgId}`,
	]);
	forgetStoreRoute(orgId);
	invalidateAccess(orgId);
	await storeStub(env, orgId, where.region).wipe(true);
	return { status: "deleted", organizationId: orgId, deletedAt: read?.results[0]?.deletedAt ?? now };
}
