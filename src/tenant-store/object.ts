import { DurableObject } from "cloudflare:workers";
import { Hono } from "hono";
import { notFoundOr405, onError } from "../lib/create-app";
import { createApp } from "../app";
import type { AuthContext } from "../auth/claims";
import { drizzle } from "drizzle-orm/d1";
import { type Database, createDb } from "../db/client";
import { type AppEnv, configState, type Env } from "../env";
import { createLogger, errorFields, type Logger } from "../lib/logger";
import type { DeliverMessage, TenantEvent } from "../queue/tenant-events";
import { directoryLookup, type Lookup, type OrgAccess, resolveOrgAccess } from "../services/access";
import { appendAudit } from "../services/audit";
import { seatStanding } from "../services/identity";
import { EVENT_RETENTION_DAYS } from "../services/retention";
import { attemptDelivery, fanOut } from "../services/outgoing-webhooks";
import { type OutboxRow, parkInOutbox, relayOutbox, unlimitedQueues } from "../services/outbox";
import type { TakeRequest, TakeResult } from "../lib/token-bucket";
import { LocalRateLimiter } from "../services/rate-limit";
import { alertMessages, METER_RETRY_MS, monthOf, monthStart, UsageLedger, WRITE_BEHIND_MS } from "../services/usage-ledger";
import { usageCounter } from "../services/usage";
import type { MeterResult } from "../services/usage-types";
import type { SeatStanding, StoreHost } from "./host";
import { LATEST_TENANT_SCHEMA, TENANT_MIGRATIONS } from "./migrations";
import { COUNTED_TABLES } from "./migrations/v2";
import { REFUSED } from "./directory";
import { type ExportRecord, recordStream, storeRecords } from "./records";
import { SqlD1 } from "./sql-d1";
import { requestFromWire, type WireRequest, type WireResponse, wireResponse } from "./wire";

/** Idempotency keys are kept this long, then the store's alarm deletes them. */
export const IDEMPOTENCY_TTL_MS = 24 * 3600_000;
/** A mirrored directory answer is re-read after this long even if nobody said it changed. */
const MIRROR_TTL_MS = 300_000;
/** Ended deliveries' logs the alarm deletes at once, at most (it comes back at once while more are due). */
const DELIVERY_PRUNE_BATCH = 1_000;
/** How late after the oldest ended delivery's expiry the alarm is set for it, so one run prunes a batch. */
const DELIVERY_PRUNE_SLACK_MS = 3_600_000;
/** Outbox rows the alarm could not hand on are tried again after this long. */
const OUTBOX_RETRY_MS = 5_000;
/** The longest wait before an event that keeps failing to apply is tried again (the wait doubles per attempt). */
const OUTBOX_RETRY_MAX_MS = 3_600_000;
/** A store-health report D1 refused is tried again this much later (by the alarm). */
const HEALTH_RETRY_MS = 60_000;

/** The schema version that brought the usage ledger (migrations/v4.ts). */
const USAGE_LEDGER_SCHEMA = 4;
/**
 * Counted calls are written to the store's SQLite at most this often (and by the alarm at the latest
 * this long after): a read request then writes nothing of its own. The quota check reads the count in
 * memory, exact while the object runs; a restart (deploy, crash) loses at most this long's calls.
 */
const USAGE_PERSIST_MS = 1_000;

/** The schema version stores migrate to (tests lower it to show a rollout; see setStoreSchemaTarget). */
let schemaTarget = LATEST_TENANT_SCHEMA;

/** Test hook: the version a store migrates to on its next call (a deploy, as a store sees it). */
export function setStoreSchemaTarget(version: number): void {
	schemaTarget = Math.max(1, Math.min(LATEST_TENANT_SCHEMA, version));
}

/** The store's clock for its usage write-behind (ms since the epoch); tests move it instead of waiting. */
let clock: () => number = () => Date.now();

/** Test hook: the usage write-behind reads the time from `now` (undefined: the real clock again). */
export function setStoreClock(now?: () => number): void {
	clock = now ?? (() => Date.now());
}

/** What serve() hands the routes for one request: the authenticated principal and this object's host. */
interface StoreProps {
	auth: AuthContext;
	host: StoreHost;
}

let sharedApp: Hono<AppEnv> | undefined;

/**
 * The Worker's routes as every store in this isolate serves them: built once (not per object: the
 * app is stateless, what belongs to one request and one object comes in the request's props).
 */
function storeApp(): Hono<AppEnv> {
	if (sharedApp) return sharedApp;
	const app = new Hono<AppEnv>();
	app.use("*", async (c, next) => {
		const props = (c.executionCtx as unknown as { props: StoreProps }).props;
		c.set("store", props.host);
		c.set("auth", props.auth);
		await next();
	});
	const routes = createApp();
	app.route("/", routes);
	app.notFound(notFoundOr405(() => routes.routes));
	app.onError(onError);
	sharedApp = app;
	return app;
}

interface MirrorEntry {
	lookup: Lookup;
	seat: SeatStanding;
}

/** A store's figures for operators and the upgrade job. */
export interface StoreStats {
	organizationId: string | null;
	schemaVersion: number;
	state: string;
	counts: Record<string, number>;
	auditHead: { seq: number; hash: string } | null;
	databaseBytes: number;
	outboxPending: number;
}

/**
 * One tenant's data in its own SQLite Durable Object (named by the organization id): catalogue,
 * orders, idempotency keys, the audit chain, outgoing webhook endpoints, deliveries and their outbox,
 * the tenant's rate-limit buckets and usage ledger (exact quota), and a mirror of the directory's
 * answer for its members.
 *
 * The Worker verifies the caller's token and calls `serve(request, auth)`: the object runs the
 * Worker's own routes (the same Hono app) against its database, with `c.var.store` pointing the
 * middleware at the object (membership from the mirror, buckets and usage counted here), so a tenant
 * request is one object call: no D1 read, no other object and no queue send on its path. A change writes its audit entry and
 * outgoing event as outbox rows in its own transaction; the object then applies them itself (the
 * audit chain's sequence and hash are assigned here), and its alarm hands deliveries to the
 * tenant-events queue and re-applies whatever an interrupted request left in the outbox.
 */
export class TenantStoreObject extends DurableObject<Env> {
	private readonly sqlD1: SqlD1;
	readonly db: Database;
	private version = 0;
	private host: StoreHost | undefined;
	/**
	 * What this object read or wrote of its binding and state (it is their only writer), so a request
	 * asks store_meta nothing (issue 17): the organization it serves, and its state ("active",
	 * "importing" or "retired").
	 */
	private bound: string | undefined;
	private state: string | undefined;
	/** serve() calls under way: retire() waits for them, since one past its check may still write. */
	private readonly serving = new Set<Promise<unknown>>();
	/** mirror_access rows as read or written here (this object is their only writer): parsed once, not per request. */
	private readonly mirrors = new Map<string, { entry: MirrorEntry; refreshedAt: number }>();
	/**
	 * Bumped by every directory change the store is told of (directoryChanged, a wipe, a retirement): a
	 * mirror read from D1 before one is not kept, as the change may have landed after the read.
	 */
	private mirrorGeneration = 0;
	/** prunableAt(): undefined until read. */
	private prunable: number | null | undefined;
	private readonly limiter = new LocalRateLimiter();
	/** The tenant's API-call counters (schema v4), written by this object alone. */
	private ledger: UsageLedger;
	/** Whether the ledger has started from the counts kept before it (store_meta usage_seeded). */
	private usageSeeded = false;
	/** When the alarm next writes the counters behind (and reports usage), if they changed. */
	private usageDue: number | undefined;
	/** Calls counted before this time stay in memory; the first one after it persists them (USAGE_PERSIST_MS). */
	private usagePersistAt = 0;
	/**
	 * When the alarm is set for, as this object last set or read it (null: none; undefined: not known, as
	 * after the alarm ran): while it is known to be due no later than what is wanted, nothing is asked.
	 */
	private alarmAt: number | null | undefined;
	/** Applying events is serialised: two requests never extend the audit chain at once. */
	private applying: Promise<unknown> = Promise.resolve();
	/** The store-health report under way (reportHealth). */
	private reporting: Promise<unknown> = Promise.resolve();
	private readonly local: Queue<TenantEvent>;
	/** The env the routes see, per set of settings the Worker sent (one in production; tests vary them). */
	private readonly envs = new Map<string, Env>();

	constructor(ctx: DurableObjectState, env: Env) {
		super(ctx, env);
		this.sqlD1 = new SqlD1(ctx.storage.sql, ctx.storage);
		// Without the schema: no relational queries are used, and the schema walk would be paid per object.
		this.db = drizzle(this.sqlD1.asD1()) as unknown as Database;
		// Inside the store, the tenant-events queue is the object itself: what a route publishes is applied here.
		const local = {
			send: async (body: TenantEvent) => this.apply([body]),
			sendBatch: async (messages: Iterable<MessageSendRequest<TenantEvent>>) => this.apply([...messages].map((m) => m.body)),
		} as unknown as Queue<TenantEvent>;
		unlimitedQueues.add(local);
		this.local = local;
		this.ledger = new UsageLedger(ctx.storage.sql, "usage_");
		ctx.blockConcurrencyWhile(async () => this.migrate());
	}

	// --- schema -------------------------------------------------------------------------------------

	private meta(key: string): string | null {
		// store_meta exists once a schema version is applied; the sqlite_master scan (about 80 rows read,
		// twice per request before) is only for a store that has not migrated yet (new, or just wiped).
		if (this.version === 0) {
			const exists = this.ctx.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'store_meta'").toArray();
			if (exists.length === 0) return null;
		}
		const row = this.ctx.storage.sql.exec<{ value: string }>("SELECT value FROM store_meta WHERE key = ?", key).toArray()[0];
		return row?.value ?? null;
	}

	private setMeta(key: string, value: string): void {
		this.ctx.storage.sql.exec("INSERT INTO store_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, value);
	}

	/** Applies the versions this store lacks, each in its own transaction (expand-only: see migrations/index.ts). */
	private migrate(): void {
		if (this.version === 0) this.version = Number(this.meta("schema_version") ?? 0);
		while (this.version < schemaTarget) {
			const next = this.version + 1;
			this.ctx.storage.transactionSync(() => {
				for (const statement of TENANT_MIGRATIONS[next - 1] ?? []) this.ctx.storage.sql.exec(statement);
				this.setMeta("schema_version", String(next));
			});
			this.version = next;
		}
	}

	/** The first caller names the organization; any other organization's call is refused. */
	private bind(orgId: string): void {
		this.migrate();
		if (this.bound === orgId) return;
		const owner = this.meta("organization_id");
		if (owner === null) this.setMeta("organization_id", orgId);
		else if (owner !== orgId) throw new Error("this tenant store belongs to another organization");
		this.bound = orgId;
	}

	/**
	 * Refuses (REFUSED) a call that would serve the tenant or write its data unless the store is active:
	 * while the upgrade job imports, and once retired. Its caller's route is stale (see storeCall).
	 */
	private live(): void {
		this.migrate();
		if ((this.state ??= this.meta("state") ?? "active") !== "active") throw new Error(REFUSED);
	}

	private setState(state: string): void {
		this.setMeta("state", state);
		this.state = state;
	}

	/** The schema version this store runs (applying what a deploy added); the cron reports it to the directory. */
	async schemaVersion(): Promise<number> {
		this.migrate();
		return this.version;
	}

	// --- requests -----------------------------------------------------------------------------------

	/**
	 * Serves one tenant request the Worker authenticated (`auth`). Refused while an upgrade imports the
	 * tenant's rows into this store and once it is retired (live()): the gateway answers 503.
	 */
	async serve(wire: WireRequest, auth: AuthContext, orgId: string, settings = "{}"): Promise<WireResponse> {
		this.live();
		this.bind(orgId);
		const request = requestFromWire(wire);
		const written = this.sqlD1.totals.rowsWritten;
		// A promise: the app's first middleware is async.
		const run = storeApp().fetch(request, this.envFor(settings), {
			waitUntil: (p: Promise<unknown>) => this.ctx.waitUntil(p),
			passThroughOnException: () => {},
			props: { auth, host: this.hostFor() } satisfies StoreProps,
		} as unknown as ExecutionContext) as Promise<Response>;
		this.serving.add(run);
		const response = await run.finally(() => this.serving.delete(run));
		// Outbox rows and idempotency keys need the alarm only when the request wrote something.
		const wrote = this.sqlD1.totals.rowsWritten !== written;
		await this.armAlarm(wrote);
		// An endpoint enabled, disabled or deleted changes what operator health counts.
		if (wrote && request.method !== "GET" && new URL(request.url).pathname.includes("/webhooks")) {
			await this.reportHealth(orgId, createLogger("info", { store: orgId }));
		}
		return wireResponse(response);
	}

	/**
	 * The object's bindings with the Worker's settings (`settings`: its vars and secrets as JSON, so the
	 * store runs with the configuration of the Worker that called it) and the local tenant-events queue.
	 */
	private envFor(settings: string): Env {
		let env = this.envs.get(settings);
		if (!env) {
			env = { ...this.env, ...(JSON.parse(settings) as Record<string, string>), TENANT_EVENTS: this.local };
			if (this.envs.size >= 8) this.envs.clear();
			this.envs.set(settings, env);
		}
		return env;
	}

	private hostFor(): StoreHost {
		this.host ??= {
			db: this.db,
			schemaVersion: () => this.version,
			access: (auth, orgId) => this.access(auth, orgId),
			seat: (orgId, userId) => this.seat(orgId, userId),
			limiter: this.limiter,
			usage: (orgId, count, quota, at) => this.usage(orgId, count, quota, at),
		};
		return this.host;
	}


	// --- directory mirror ---------------------------------------------------------------------------

	private mirrored(principal: string): MirrorEntry | null {
		let known = this.mirrors.get(principal);
		if (!known) {
			const row = this.ctx.storage.sql
				.exec<{ lookup: string; refreshed_at: number }>("SELECT lookup, refreshed_at FROM mirror_access WHERE principal = ?", principal)
				.toArray()[0];
			if (!row) return null;
			known = { entry: JSON.parse(row.lookup) as MirrorEntry, refreshedAt: row.refreshed_at };
			this.remember(principal, known);
		}
		if (Date.now() - known.refreshedAt > MIRROR_TTL_MS) return null;
		return known.entry;
	}

	private remember(principal: string, known: { entry: MirrorEntry; refreshedAt: number }): void {
		if (this.mirrors.size >= 10_000) this.mirrors.clear();
		this.mirrors.set(principal, known);
	}

	private async mirror(orgId: string, principal: string): Promise<MirrorEntry> {
		const hit = this.mirrored(principal);
		if (hit) return hit;
		const directory = createDb(this.env.DB);
		const generation = this.mirrorGeneration;
		const entry: MirrorEntry = {
			lookup: await directoryLookup(directory, orgId, principal),
			seat: await seatStanding(directory, orgId, principal, false),
		};
		// Placeholder memberships (token claims before the webhook) are not mirrored: re-read until real. Nor
		// is an answer a directory change overtook while it was read (this request still uses it, as it would
		// had it arrived a moment earlier; the next one reads the directory again).
		if (generation !== this.mirrorGeneration) return entry;
		if (entry.lookup.membership !== undefined || principal.startsWith("apikey:")) {
			const refreshedAt = Date.now();
			this.ctx.storage.sql.exec(
				"INSERT INTO mirror_access (principal, lookup, refreshed_at) VALUES (?, ?, ?) ON CONFLICT (principal) DO UPDATE SET lookup = excluded.lookup, refreshed_at = excluded.refreshed_at",
				principal,
				JSON.stringify(entry),
				refreshedAt,
			);
			this.remember(principal, { entry, refreshedAt });
		}
		return entry;
	}

	private async access(auth: AuthContext, orgId: string): Promise<OrgAccess> {
		const directory = createDb(this.env.DB);
		return resolveOrgAccess(directory, auth, orgId, async (o, principal) => (await this.mirror(o, principal)).lookup);
	}

	private async seat(orgId: string, userId: string): Promise<SeatStanding> {
		return (await this.mirror(orgId, userId)).seat;
	}

	/** One take from a bucket of this tenant, for the tenant routes the Worker serves itself: one budget with the store's. */
	async take(key: string, req: TakeRequest): Promise<TakeResult> {
		this.live();
		return this.limiter.take(key, req);
	}

	/**
	 * The directory changed for this tenant (Clerk consumer, operator, billing): forget the mirrored
	 * answers — of one principal, or of all (a plan or seat change concerns every member).
	 */
	async directoryChanged(principal?: string): Promise<void> {
		this.live();
		this.mirrorGeneration++;
		if (principal) {
			this.ctx.storage.sql.exec("DELETE FROM mirror_access WHERE principal = ?", principal);
			this.mirrors.delete(principal);
		} else {
			this.ctx.storage.sql.exec("DELETE FROM mirror_access");
			this.mirrors.clear();
		}
	}

	// --- usage ----------------------------------------------------------------------------------------

	/**
	 * Meters `count` API calls at `at` against the monthly `quota`: refused (nothing counted) once the
	 * month's calls reach the quota, else counted. Exact: this object is the counters' only writer and
	 * runs one call at a time. The Worker calls it for the tenant routes it serves itself (members, API
	 * keys, usage); the routes served here count through `c.var.store.usage`, with no call at all.
	 */
	async meter(orgId: string, input: { count?: number; quota: number; at?: number }): Promise<MeterResult> {
		this.live();
		this.bind(orgId);
		const result = await this.usage(orgId, input.count ?? 1, input.quota, input.at ?? Date.now());
		await this.armAlarm(false);
		return result;
	}

	private async usage(orgId: string, count: number, quota: number, at: number): Promise<MeterResult> {
		if (this.version < USAGE_LEDGER_SCHEMA) return this.legacyUsage(orgId, count, quota, at);
		if (!this.usageSeeded) await this.ctx.blockConcurrencyWhile(() => this.seedUsage(orgId, quota, at));
		const month = monthOf(at);
		const used = this.ledger.monthTotal(month);
		if (used >= quota) return { allowed: false, month, monthUsed: used, quota, alerts: [] };
		const result = this.ledger.add(count, quota, at);
		const now = clock();
		if (now >= this.usagePersistAt) {
			this.ledger.persist();
			this.usagePersistAt = now + USAGE_PERSIST_MS;
		}
		this.usageDue ??= now + WRITE_BEHIND_MS;
		// The alerts' audit entries and events: parked in the outbox in the same step as the alerts row that
		// marks them sent (one commit), then relayed like a route's change (applied here, their rows deleted). If
		// that fails (D1 unreachable for the fan-out), they wait for the alarm: the counted call is answered all the same.
		if (result.alerts.length > 0) {
			const rows = await parkInOutbox(this.db, alertMessages(orgId, result));
			const relayed = await relayOutbox({ ...this.env, TENANT_EVENTS: this.local }, this.db, rows, createLogger("info", { store: orgId }));
			if (relayed < rows.length) await this.armAlarm();
		}
		return { allowed: true, ...result };
	}

	/**
	 * A store below schema v4 (held back by a rollout: setStoreSchemaTarget) meters as the code before v4
	 * did, through the tenant's UsageCounter object, here one call per metered call.
	 */
	private async legacyUsage(orgId: string, count: number, quota: number, at: number): Promise<MeterResult> {
		const counter = usageCounter(this.env, orgId);
		const current = await counter.add({ organizationId: orgId, count: 0, quota, at });
		if (current.monthUsed >= quota) return { allowed: false, ...current };
		return { allowed: true, ...(await counter.add({ organizationId: orgId, count, quota, at })) };
	}

	/**
	 * Once per store: the ledger starts from the daily rollups (D1 usage_daily, this month and the last)
	 * that the tenant's UsageCounter object wrote before the store counted (calls it had not yet written
	 * behind, at most WRITE_BEHIND_MS of them, are not carried over). What they hold counts as already
	 * reported to Stripe and its thresholds as already announced.
	 */
	private async seedUsage(orgId: string, quota: number, at: number): Promise<void> {
		if (this.meta("usage_seeded") === null) {
			const since = `${monthOf(monthStart(monthOf(at), -1))}-01`;
			const { results } = await this.env.DB.prepare(
				"SELECT day, count FROM usage_daily WHERE organization_id = ? AND metric = 'api_calls' AND day >= ?",
			)
				.bind(orgId, since)
				.all<{ day: string; count: number }>();
			this.ctx.storage.transactionSync(() => {
				this.ledger.seed(results, quota, at);
				this.setMeta("usage_seeded", String(at));
			});
		}
		this.usageSeeded = true;
	}

	/** The month's calls per day (GET /api/orgs/:orgId/usage for a store tenant). */
	async usageSummary(month = monthOf(Date.now())): Promise<{ month: string; used: number; daily: { day: string; count: number }[] }> {
		this.live();
		const orgId = this.meta("organization_id");
		// Below schema v4 the tenant's UsageCounter counts (legacyUsage).
		if (this.version < USAGE_LEDGER_SCHEMA && orgId !== null) return usageCounter(this.env, orgId).summary(month);
		return this.ledger.summary(month);
	}

	/**
	 * The alarm's usage part, when due: the counters written behind to D1 and the month's growth
	 * reported to Stripe; what failed is tried again later (WRITE_BEHIND_MS, METER_RETRY_MS for Stripe).
	 */
	private async flushUsage(orgId: string, logger: ReturnType<typeof createLogger>): Promise<void> {
		const now = clock();
		if (this.usageDue === undefined ? !this.ledger.hasDirty() : now < this.usageDue) return;
		this.usageDue = undefined;
		try {
			const { reportError } = await this.ledger.flush(this.env, orgId);
			if (reportError !== undefined) {
				logger.warn(`usage report to Stripe failed; retrying in ${METER_RETRY_MS / 1000} s`, errorFields(reportError));
				this.usageDue = now + METER_RETRY_MS;
			}
		} catch (err) {
			logger.error("usage counters could not be written behind", errorFields(err));
			this.usageDue = now + WRITE_BEHIND_MS;
		}
	}

	// --- events ---------------------------------------------------------------------------------------

	/**
	 * Applies tenant events in this store: audit entries join the chain (idempotent on the event id),
	 * outgoing events fan out into deliveries, deliveries wait in the outbox for the alarm. The queue
	 * consumer calls it for events produced outside the store (members, billing, API keys).
	 */
	async apply(messages: TenantEvent[]): Promise<void> {
		this.live();
		// Events name their organization: a store that has only received events is bound by them (export,
		// health and wipe read the binding), and another organization's events are refused.
		for (const orgId of new Set(messages.map((m) => m.organizationId))) this.bind(orgId);
		const run = this.applying.then(() => this.applyNow(messages));
		this.applying = run.catch(() => undefined);
		return run;
	}

	private async applyNow(messages: TenantEvent[]): Promise<void> {
		const audits = messages.filter((m) => m.kind === "audit");
		if (audits.length > 0) {
			const failed = await appendAudit(this.db, audits);
			// The cause is named: the consumer and the alarm log it with the retry.
			for (const err of failed.values()) throw new Error(`audit append failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
		}
		const deliveries: DeliverMessage[] = messages.filter((m) => m.kind === "webhook.deliver");
		for (const m of messages) if (m.kind === "webhook.event") deliveries.push(...(await fanOut(this.db, this.env.DB, m)));
		if (deliveries.length > 0) {
			await parkInOutbox(this.db, deliveries);
			await this.armAlarm();
		}
	}

	/** One delivery attempt (the tenant-events consumer calls it for a webhook.deliver message). */
	async deliver(deliveryId: string, orgId: string): Promise<{ retryInSeconds?: number }> {
		this.live();
		this.bind(orgId);
		const result = await attemptDelivery(this.db, deliveryId, orgId);
		if (result.publish.length > 0) await this.apply(result.publish);
		// An ended delivery's log is pruned by the alarm once its retention is over.
		if (result.retryInSeconds === undefined) {
			const due = Date.now() + this.deliveryRetentionMs() + DELIVERY_PRUNE_SLACK_MS;
			if (this.prunable !== undefined) this.prunable = Math.min(this.prunable ?? due, due);
			await this.armAlarm();
		}
		await this.reportHealth(this.meta("organization_id"), createLogger("info", { store: orgId }));
		return result.retryInSeconds === undefined ? {} : { retryInSeconds: result.retryInSeconds };
	}

	/**
	 * Sets the alarm for what is due first: pending outbox rows (now), the oldest idempotency key's
	 * expiry, the oldest ended delivery's, counted calls still in memory, the usage write-behind. `changed`: whether tenant rows were
	 * written since the alarm was last set (else the outbox and the keys are as they were).
	 */
	private async armAlarm(changed = true): Promise<void> {
		const wants: number[] = [];
		if (changed) {
			if (this.ctx.storage.sql.exec("SELECT 1 FROM outbox WHERE status = 'pending' LIMIT 1").toArray().length > 0) wants.push(Date.now());
			const keys = this.ctx.storage.sql.exec<{ t: number | null }>("SELECT min(created_at) AS t FROM idempotency_keys").toArray()[0]?.t ?? null;
			if (keys !== null) wants.push(keys + IDEMPOTENCY_TTL_MS);
			const prunable = this.prunableAt();
			if (prunable !== null) wants.push(prunable);
		}
		if (this.ledger.hasPending()) wants.push(this.usagePersistAt);
		if (this.usageDue !== undefined) wants.push(this.usageDue);
		if (wants.length === 0) return;
		const want = Math.min(...wants);
		if (this.alarmAt != null && this.alarmAt <= want) return;
		const current = await this.ctx.storage.getAlarm();
		if (current === null || current > want) await this.setAlarm(want);
		else this.alarmAt = current;
	}

	/**
	 * When the oldest ended delivery's log is due for pruning, or null: read once, then kept in memory (a
	 * write adds no query for it); deliver() moves it earlier, the alarm's pruning and a wipe forget it. An hour
	 * late: each run then prunes what ended within that hour, not one delivery per alarm.
	 */
	private prunableAt(): number | null {
		if (this.prunable === undefined) {
			const ended = this.ctx.storage.sql
				.exec<{ t: number | null }>("SELECT min(updated_at) AS t FROM webhook_deliveries WHERE status IN ('succeeded', 'failed')")
				.toArray()[0]?.t;
			this.prunable = ended == null ? null : ended + this.deliveryRetentionMs() + DELIVERY_PRUNE_SLACK_MS;
		}
		return this.prunable;
	}

	/** How long an ended delivery's log is kept: EVENT_RETENTION_DAYS, as the cron keeps the shared tables'. */
	private deliveryRetentionMs(): number {
		return (configState(this.env).config.EVENT_RETENTION_DAYS ?? EVENT_RETENTION_DAYS) * 86_400_000;
	}

	private async setAlarm(at: number): Promise<void> {
		await this.ctx.storage.setAlarm(at);
		this.alarmAt = at;
	}

	/**
	 * The object's one alarm: re-applies events an interrupted request left in the outbox, hands
	 * deliveries to the tenant-events queue (deleted once it accepted them), purges idempotency keys
	 * older than 24 h, writes the usage counters behind when due, and sets itself for whatever is next.
	 */
	override async alarm(): Promise<void> {
		this.alarmAt = undefined;
		const orgId = this.meta("organization_id");
		const logger = createLogger("info", { store: orgId ?? "unbound" });
		this.migrate();
		this.ctx.storage.sql.exec("DELETE FROM idempotency_keys WHERE created_at < ?", Date.now() - IDEMPOTENCY_TTL_MS);
		// Delivery logs that ended are kept as long as on the shared tables (EVENT_RETENTION_DAYS), oldest first,
		// a bounded number per alarm (the alarm comes back at once while more are due).
		const pruned = this.ctx.storage.sql.exec(
			`DELETE FROM webhook_deliveries WHERE rowid IN (SELECT rowid FROM webhook_deliveries
				WHERE updated_at < ? AND status IN ('succeeded', 'failed') ORDER BY updated_at LIMIT ${DELIVERY_PRUNE_BATCH}) RETURNING 1`,
			Date.now() - this.deliveryRetentionMs(),
		).toArray().length;
		this.prunable = undefined;
		if (this.version >= USAGE_LEDGER_SCHEMA) {
			this.ledger.persist();
			if (orgId !== null) await this.flushUsage(orgId, logger);
		}
		// Picked oldest first, rows that failed to apply behind the rest (attempts), so they never hold back newer
		// ones; applied in the order they were written (created_at), so the audit chain keeps the order of the
		// changes, also when one of them failed to apply more often than a later one.
		const rows = this.ctx.storage.sql
			.exec<{ id: string; body: string; attempts: number; created_at: number }>(
				"SELECT id, body, attempts, created_at FROM outbox WHERE status = 'pending' ORDER BY attempts, created_at, id LIMIT 100",
			)
			.toArray()
			.sort((a, b) => a.created_at - b.created_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
		// Each row's kind from its parsed body (not a text match, which a payload could contain). A body
		// that is not JSON can never be applied or sent: it is kept as failed, which operator health counts.
		const parsed: { row: OutboxRow; event: TenantEvent }[] = [];
		for (const row of rows) {
			try {
				parsed.push({ row, event: JSON.parse(row.body) as TenantEvent });
			} catch (err) {
				this.outboxError(row.id, err, "failed");
			}
		}
		const local = parsed.filter((p) => p.event.kind !== "webhook.deliver");
		const outgoing = parsed.filter((p) => p.event.kind === "webhook.deliver").map((p) => p.row);
		// Rows left pending (events not applied, deliveries the queue refused) are tried again after
		// OUTBOX_RETRY_MS, not at once: an alarm re-armed for now would run again and again.
		// An event that failed to apply n times waits OUTBOX_RETRY_MS · 2^(n-1), at most OUTBOX_RETRY_MAX_MS: one
		// that can never apply costs an alarm an hour, not one every 5 s (each with its D1 reads), for good.
		let retryMs: number | null = null;
		const failing = local.length > 0 ? await this.applyPending(local, logger) : null;
		if (failing !== null) retryMs = Math.min(OUTBOX_RETRY_MS * 2 ** Math.min(failing - 1, 20), OUTBOX_RETRY_MAX_MS);
		const sent = await relayOutbox(this.env, this.db, outgoing, logger);
		if (sent < outgoing.length) retryMs = OUTBOX_RETRY_MS;
		await this.reportHealth(orgId, logger);
		if (retryMs !== null || rows.length === 100 || pruned >= DELIVERY_PRUNE_BATCH) {
			await this.setAlarm(Date.now() + (retryMs ?? 0));
			return;
		}
		await this.armAlarm();
	}

	/**
	 * The alarm's part for events left in the outbox (an interrupted request's, a refused relay's): applied
	 * together, their rows deleted once applied. If that fails, each is tried alone, so an event that keeps
	 * failing holds back none of the others; those that fail stay pending with the error and one more
	 * attempt (the alarm reads them after the rest), for the next alarm and operator health (degraded once
	 * one is older than its threshold). Returns null when all were applied, else the fewest attempts any of
	 * those left pending has now.
	 */
	private async applyPending(pending: { row: OutboxRow; event: TenantEvent }[], logger: Logger): Promise<number | null> {
		const done = (p: { row: OutboxRow }) => this.ctx.storage.sql.exec("DELETE FROM outbox WHERE id = ?", p.row.id);
		if (pending.length > 1) {
			try {
				await this.apply(pending.map((p) => p.event));
				for (const p of pending) done(p);
				return null;
			} catch {
				// Each alone, below.
			}
		}
		const failed: string[] = [];
		let fewest: number | null = null;
		let first: unknown;
		for (const p of pending) {
			try {
				await this.apply([p.event]);
				done(p);
			} catch (err) {
				this.outboxError(p.row.id, err);
				failed.push(p.row.id);
				fewest = Math.min(fewest ?? Number.POSITIVE_INFINITY, p.row.attempts + 1);
				first ??= err;
			}
		}
		if (failed.length > 0) {
			logger.error(`${failed.length} of ${pending.length} store events could not be applied`, { ...errorFields(first), outboxIds: failed });
		}
		return fewest;
	}

	/** Notes why an outbox row was not handled, as one more attempt (`status`: kept pending for another try, or failed for good). */
	private outboxError(id: string, err: unknown, status: "pending" | "failed" = "pending"): void {
		const message = (err instanceof Error ? err.message : String(err)).slice(0, 500);
		this.ctx.storage.sql.exec(
			"UPDATE outbox SET last_error = ?, status = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?",
			message,
			status,
			Date.now(),
			id,
		);
	}

	/**
	 * What operator health (services/operator.ts) reads of this store: its outbox backlog and failures and
	 * its failing or disabled webhook endpoints, as one row of D1's store_health, written only when the
	 * figures changed since the last report (kept in store_meta), the row deleted when all are zero: a
	 * healthy store writes nothing. Called after the alarm, a delivery attempt, a write to the webhooks
	 * routes and an import. A write D1 refuses is logged and tried again by the alarm (HEALTH_RETRY_MS).
	 */
	private reportHealth(orgId: string | null, logger: Logger): Promise<void> {
		// One at a time: each compares with what the last one wrote.
		const run = this.reporting.then(() => this.reportHealthNow(orgId, logger));
		this.reporting = run.catch(() => undefined);
		return run;
	}

	private async reportHealthNow(orgId: string | null, logger: Logger): Promise<void> {
		if (orgId === null) return;
		const h = this.ctx.storage.sql
			.exec<{ pending: number; oldest: number | null; failed: number; failing: number; disabled: number }>(
				`SELECT (SELECT count(*) FROM outbox WHERE status = 'pending') AS pending,
					(SELECT min(created_at) FROM outbox WHERE status = 'pending') AS oldest,
					(SELECT count(*) FROM outbox WHERE status = 'failed') AS failed,
					(SELECT count(*) FROM webhook_endpoints WHERE status = 'enabled' AND consecutive_failures > 0) AS failing,
					(SELECT count(*) FROM webhook_endpoints WHERE status = 'disabled') AS disabled`,
			)
			.one();
		const figures = [h.pending, h.oldest, h.failed, h.failing, h.disabled];
		const key = figures.join();
		if (key === (this.meta("health_reported") ?? "0,,0,0,0")) return;
		try {
			await (h.pending + h.failed + h.failing + h.disabled === 0
				? this.env.DB.prepare("DELETE FROM store_health WHERE organization_id = ?").bind(orgId)
				: this.env.DB.prepare(
						`INSERT INTO store_health (organization_id, outbox_pending, outbox_oldest, outbox_failed, endpoints_failing,
							endpoints_disabled, reported_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (organization_id) DO UPDATE SET
							outbox_pending = excluded.outbox_pending, outbox_oldest = excluded.outbox_oldest, outbox_failed = excluded.outbox_failed,
							endpoints_failing = excluded.endpoints_failing, endpoints_disabled = excluded.endpoints_disabled,
							reported_at = excluded.reported_at`,
					).bind(orgId, ...figures, Date.now())
			).run();
			this.setMeta("health_reported", key);
		} catch (err) {
			// Tried again by the alarm (which reports at its end) in a minute at the latest.
			logger.warn("store health not reported", errorFields(err));
			const retryAt = Date.now() + HEALTH_RETRY_MS;
			if (this.alarmAt == null || this.alarmAt > retryAt) await this.setAlarm(retryAt);
		}
	}

	// --- operators and the upgrade job ------------------------------------------------------------------

	/** Counts (maintained counters from schema v2), the audit head and the database size. */
	async stats(): Promise<StoreStats> {
		this.migrate();
		const counts: Record<string, number> = {};
		if (this.version >= 2) {
			for (const r of this.ctx.storage.sql.exec<{ name: string; value: number }>("SELECT name, value FROM store_counters")) counts[r.name] = r.value;
		} else {
			for (const t of COUNTED_TABLES) counts[t] = Number(this.ctx.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${t}`).one().n);
		}
		const head = this.ctx.storage.sql.exec<{ seq: number; hash: string }>("SELECT seq, hash FROM audit_logs ORDER BY seq DESC LIMIT 1").toArray()[0];
		const pending = this.ctx.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox WHERE status = 'pending'").one().n;
		return {
			organizationId: this.meta("organization_id"),
			schemaVersion: this.version,
			state: this.meta("state") ?? "active",
			counts,
			auditHead: head ? { seq: head.seq, hash: head.hash } : null,
			databaseBytes: this.ctx.storage.sql.databaseSize,
			outboxPending: Number(pending),
		};
	}

	/** The tables a store holds tenant rows in, in import order (parents first). */
	static readonly DATA_TABLES = [
		"categories",
		"products",
		"variants",
		"orders",
		"order_items",
		"order_status_history",
		"idempotency_keys",
		"audit_logs",
		"audit_checkpoints",
		"webhook_endpoints",
		"webhook_deliveries",
		"outbox",
	] as const;

	private static dataTable(table: string): string {
		if (!(TenantStoreObject.DATA_TABLES as readonly string[]).includes(table)) throw new Error(`not a store table: ${table}`);
		return table;
	}

	/**
	 * The tenant's records as NDJSON (operator export, API.md): one `{"type", "data"}` line per record,
	 * `data` as the API renders it (tenant-store/records.ts), streamed a page at a time. Reads are not
	 * one snapshot: a write between two pages shows in the later one (suspend the tenant first for a
	 * frozen export). An unbound (never used) store exports nothing.
	 */
	async exportNdjson(): Promise<ReadableStream<Uint8Array>> {
		this.migrate();
		const orgId = this.meta("organization_id");
		async function* none(): AsyncGenerator<ExportRecord[]> {}
		return recordStream(orgId === null ? none() : storeRecords(this.db.$client, orgId, { outbox: true }));
	}

	/**
	 * The upgrade job starts moving the tenant's rows in: requests answer 503 until finishImport. With
	 * `fresh`, what an earlier, abandoned attempt imported is deleted first (the shared tables may have
	 * changed since, and INSERT OR IGNORE would keep the old rows); refused if the store serves data.
	 */
	async beginImport(orgId: string, fresh = false, attempt?: string): Promise<void> {
		this.migrate();
		// The same upgrade begun again (two cron runs overlapping on one upgrade row): what it imported stays.
		if (attempt !== undefined && this.meta("state") === "importing" && this.meta("import_attempt") === attempt) return;
		// Retired (the tenant deleted, or moved to another region) while the job was between its steps: an
		// import would bring the tenant's rows back into a store nobody names.
		const refuseRetired = () => {
			if (this.meta("state") === "retired") throw new Error("this tenant store is retired; not importing into it");
		};
		refuseRetired();
		if (fresh && this.meta("state") !== "importing" && (await this.hasRecords())) throw new Error("this tenant store already holds data; not importing over it");
		if (fresh) await this.wipe();
		// Retired while the wipe waited: offboarding came in between (a wipe of ours after it would have erased
		// that mark, which the upgrade job's flip catches: see upgrade.ts).
		refuseRetired();
		this.bind(orgId);
		this.setState("importing");
		if (attempt !== undefined) this.setMeta("import_attempt", attempt);
	}

	/**
	 * Rows of one table from the shared D1 tables (column names as stored), inserted as they are:
	 * a row already here is left alone, so a resumed or repeated copy adds nothing twice. Only while
	 * importing (between beginImport and finishImport).
	 */
	async importRows(table: string, rows: Record<string, SqlStorageValue>[]): Promise<number> {
		this.migrate();
		TenantStoreObject.dataTable(table);
		if (this.meta("state") !== "importing") throw new Error("this tenant store is not importing");
		// Only the columns this store's table has: D1 may be a migration ahead of the store's schema (a column
		// added to both, while this code's store version lacks it; a rollback), and the copy still goes on.
		const known = new Set(this.ctx.storage.sql.exec<{ name: string }>(`SELECT name FROM pragma_table_info('${table}')`).toArray().map((c) => c.name));
		let written = 0;
		this.ctx.storage.transactionSync(() => {
			for (const row of rows) {
				const cols = Object.keys(row).filter((c) => known.has(c));
				const cursor = this.ctx.storage.sql.exec(
					`INSERT OR IGNORE INTO ${table} (${cols.map((c) => `"${c.replaceAll('"', "")}"`).join(", ")}) VALUES (${cols.map(() => "?").join(", ")})`,
					...cols.map((c) => row[c] ?? null),
				);
				cursor.toArray();
				written += cursor.rowsWritten > 0 ? 1 : 0;
			}
		});
		return written;
	}

	/**
	 * Whether the store holds any tenant record (a row of any of its data tables, the export's: audit
	 * entries, idempotency keys and pending outbox rows too): its data region is then fixed (API.md).
	 */
	async hasRecords(): Promise<boolean> {
		this.migrate();
		return TenantStoreObject.DATA_TABLES.some((t) => this.ctx.storage.sql.exec(`SELECT 1 FROM ${t} LIMIT 1`).toArray().length > 0);
	}

	/**
	 * A data region change (operator PATCH, directory.ts storeHasData). `on`: once the requests under way
	 * finished, the store retires if it holds no record (the check and the mark are one step of the
	 * object: no write comes between them); a retired store refuses to serve the tenant or write its
	 * data (live()) and still answers stats, export and wipe. Off: it serves again (a move back).
	 * Answers whether it holds a record (then `on` left it serving).
	 */
	async retire(on: boolean): Promise<boolean> {
		await this.applying;
		// A Set's iterator also visits what is added meanwhile: done, none is under way.
		for (const run of this.serving) await run.catch(() => undefined);
		const has = await this.hasRecords();
		if (on && has) return has;
		// Off: "active" (a store the directory names is never importing: the upgrade job finishes first).
		this.setState(on ? "retired" : "active");
		// A retired store is not told of directory changes: its mirror is dropped, a move back reads them again.
		this.ctx.storage.sql.exec("DELETE FROM mirror_access");
		this.mirrors.clear();
		this.mirrorGeneration++;
		return has;
	}

	/** Rows per table, counted (COUNT(*), not the maintained counters): the upgrade job's verification. */
	async tableCounts(tables: string[]): Promise<Record<string, number>> {
		this.migrate();
		const counts: Record<string, number> = {};
		for (const t of tables) counts[t] = Number(this.ctx.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${TenantStoreObject.dataTable(t)}`).one().n);
		return counts;
	}

	/** Ends an import: the store serves requests again. */
	async finishImport(attempt?: string): Promise<StoreStats> {
		this.migrate();
		// An import under way ends; one already ended (the job's flip failed after it, and it runs again) is left
		// as it is; a store wiped and retired meanwhile (the tenant deleted) stays retired.
		const state = this.meta("state");
		if (state === "active") return this.stats();
		if (state !== "importing") throw new Error("this tenant store is not importing");
		// A run of an earlier upgrade (its row abandoned and begun again meanwhile) does not end the new one's import.
		if (attempt !== undefined && this.meta("import_attempt") !== attempt) throw new Error("this tenant store is importing for another upgrade attempt");
		this.setState("active");
		await this.armAlarm();
		// Imported endpoints that were failing or disabled count at once (operator health).
		const orgId = this.meta("organization_id");
		await this.reportHealth(orgId, createLogger("info", { store: orgId ?? "unbound" }));
		return this.stats();
	}

	/**
	 * Offboarding: every row of the store is deleted (the object's storage and alarm wiped); the
	 * directory keeps the organization's row, marked deleted, so the id is never reused by mistake. A
	 * later call to the object finds an empty store (it creates its schema again, with no rows).
	 */
	async wipe(retire = false): Promise<void> {
		const orgId = this.meta("organization_id");
		// Offboarding: refuse new calls first (live()), then let the requests and events under way finish, as
		// retire() does: one still running would write the tenant's rows into the wiped store.
		if (retire) {
			this.migrate();
			this.setState("retired");
		}
		await this.applying;
		for (const run of this.serving) await run.catch(() => undefined);
		await this.ctx.storage.deleteAlarm();
		this.alarmAt = null;
		await this.ctx.storage.deleteAll();
		this.version = 0;
		this.host = undefined;
		this.bound = undefined;
		this.state = undefined;
		this.mirrors.clear();
		this.mirrorGeneration++;
		this.prunable = undefined;
		this.ledger = new UsageLedger(this.ctx.storage.sql, "usage_");
		this.usageSeeded = false;
		this.usageDue = undefined;
		this.usagePersistAt = 0;
		// Offboarding: retired in the same call, so a stale route elsewhere cannot write the tenant's data again.
		if (retire) {
			this.migrate();
			this.setState("retired");
		}
		// Its health row goes with it (an empty store reports nothing); best effort, after the wipe.
		if (orgId !== null) {
			await this.env.DB.prepare("DELETE FROM store_health WHERE organization_id = ?")
				.bind(orgId)
				.run()
				.catch((err: unknown) => createLogger("info", { store: orgId }).warn("store health row not deleted", errorFields(err)));
		}
	}

	/** Rows read and written by the store's statements since the object started (benchmarks read them). */
	async rowCounters(): Promise<{ rowsRead: number; rowsWritten: number }> {
		return { ...this.sqlD1.totals };
	}
}
