/**
 * Bench-only Worker entry for `npm run bench -- scale` (bench/scale.mjs builds it with wrangler into
 * bench/.out/scale and serves it with Miniflare; it is never deployed). It is the production Worker
 * (src/index.ts) plus:
 *
 * - BenchTenantStore: TenantStoreObject with seeding and inspection RPCs, bound as TENANT_STORE in the
 *   bench's Miniflare config only. Its serve() adds `x-bench-rows-read` / `x-bench-queries` to each
 *   answer: the rows read and statements run through the store's D1-shaped handle (SqlD1) by that request.
 * - `x-bench-d1: 1` on a request: the Worker runs it with env.DB wrapped to count D1's meta.rows_read of
 *   every statement, returned as `x-bench-d1-rows-read` (and per statement in `x-bench-d1-detail`).
 * - /__bench/* routes: directory seeding straight into D1 (rows generated in SQL), store seeding,
 *   and the fan-out over many tenant stores (create with a product and an order; check isolation).
 */
import { createHash } from "node:crypto";
import type { AuthContext } from "../src/auth/claims";
import type { Env } from "../src/env";
import worker, { TenantStoreObject } from "../src/index";
import { responseFromWire, type WireRequest, type WireResponse } from "../src/tenant-store/wire";

export { RateLimiter, TenantStoreObject, UsageCounter } from "../src/index";

type Kind = "products" | "orders" | "deliveries" | "audit";

/** Rows `from..to` of one table, generated in SQL (recursive CTE): created_at advances every 10 rows, so keys tie. */
const SEED_SQL: Record<Exclude<Kind, "audit">, string> = {
	products: `WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
		INSERT INTO products (id, organization_id, category_id, name, sku, description, price_minor, currency, status, stock, version, created_at, updated_at)
		SELECT printf('prd_s%08d', i), ?3, printf('cat_s%d', i % 5),
			printf('Product %d %s', i, CASE i % 10 WHEN 0 THEN 'amber' WHEN 1 THEN 'basalt' WHEN 2 THEN 'cobalt' WHEN 3 THEN 'denim' WHEN 4 THEN 'ember'
				WHEN 5 THEN 'fennel' WHEN 6 THEN 'garnet' WHEN 7 THEN 'hazel' WHEN 8 THEN 'indigo' ELSE 'jasper' END),
			printf('SKU-%08d', i), NULL, 1000 + i % 500, 'USD', CASE i % 4 WHEN 0 THEN 'draft' ELSE 'active' END, 100, 1, ?4 + i / 10, ?4 + i / 10
		FROM n`,
	orders: `WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
		INSERT INTO orders (id, organization_id, status, currency, total_minor, customer_email, created_by, version, created_at, updated_at)
		SELECT printf('ord_s%08d', i), ?3, CASE i % 4 WHEN 0 THEN 'pending' WHEN 1 THEN 'paid' WHEN 2 THEN 'fulfilled' ELSE 'cancelled' END,
			'USD', 1000 + i, NULL, 'user_bench', 1, ?4 + i / 10, ?4 + i / 10
		FROM n`,
	deliveries: `WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
		INSERT INTO webhook_deliveries (id, organization_id, endpoint_id, event_id, event_type, payload, status, attempts, last_status_code, created_at, updated_at)
		SELECT printf('dlv_s%08d', i), ?3, 'whe_bench', printf('evt_s%08d', i), 'product.created', '{}', 'succeeded', 1, 200, ?4 + i / 10, ?4 + i / 10
		FROM n`,
};

/** The audit entry's canonical text, field for field as src/services/audit.ts hashes it (verify fails otherwise). */
function canonical(e: (string | number | null)[]): string {
	return JSON.stringify(e);
}

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

/** What the store's SQLite did for the request being served: statements through SqlD1, and every cursor. */
interface Counting {
	statements: number;
	cursors: SqlStorageCursor<Record<string, SqlStorageValue>>[];
}

/**
 * The object's state with `storage.sql.exec` watched: every cursor the object opens (its own lookups as
 * well as SqlD1's) is kept, so a request's total rows read can be summed once it is done.
 */
function watched(ctx: DurableObjectState, counting: Counting): DurableObjectState {
	const sql = ctx.storage.sql;
	const watchedSql = {
		exec(query: string, ...params: SqlStorageValue[]) {
			const cursor = sql.exec(query, ...params);
			counting.cursors.push(cursor);
			return cursor;
		},
		get databaseSize() {
			return sql.databaseSize;
		},
	};
	const bind = <T extends object>(target: T, overrides: Record<string, unknown>) =>
		new Proxy(target, {
			get(t, key) {
				if (typeof key === "string" && key in overrides) return overrides[key];
				const v = Reflect.get(t, key, t);
				return typeof v === "function" ? v.bind(t) : v;
			},
		});
	return bind(ctx, { storage: bind(ctx.storage, { sql: watchedSql }) });
}

export class BenchTenantStore extends TenantStoreObject {
	private readonly counting: Counting;

	constructor(ctx: DurableObjectState, env: Env) {
		super(ctx, env);
		const counting: Counting = { statements: 0, cursors: [] };
		this.counting = counting;
		// From here on the object's own statements go through the watched state (the constructor's
		// migration ran before: it is not a request's).
		Object.defineProperty(this, "ctx", { value: watched(ctx, counting), configurable: true });
		// The statements of the store's D1-shaped handle (made in the constructor with the plain state):
		// counted (its `changes()` follow-up excluded) and watched.
		const handle = (this as unknown as { sqlD1: { sql: SqlStorage } }).sqlD1;
		const real = handle.sql;
		handle.sql = {
			exec(query: string, ...params: unknown[]) {
				if (!query.startsWith("SELECT changes()")) counting.statements++;
				const cursor = real.exec(query, ...(params as SqlStorageValue[]));
				counting.cursors.push(cursor);
				return cursor;
			},
			get databaseSize() {
				return real.databaseSize;
			},
		} as unknown as SqlStorage;
	}

	/**
	 * The production serve(), plus x-bench-rows-read (rows read through SqlD1: the route's statements),
	 * x-bench-rows-read-total (every statement the object ran for the request, its own lookups included)
	 * and x-bench-queries (statements through SqlD1).
	 */
	override async serve(request: WireRequest, auth: AuthContext, orgId: string, settings = "{}"): Promise<WireResponse> {
		const before = await this.rowCounters();
		const statements = this.counting.statements;
		this.counting.cursors = [];
		const res = await super.serve(request, auth, orgId, settings);
		const after = await this.rowCounters();
		const total = this.counting.cursors.reduce((a, c) => a + c.rowsRead, 0);
		this.counting.cursors = [];
		res.headers.push(
			["x-bench-rows-read", String(after.rowsRead - before.rowsRead)],
			["x-bench-rows-read-total", String(total)],
			["x-bench-queries", String(this.counting.statements - statements)],
		);
		return res;
	}

	private own(orgId: string): void {
		this.ctx.storage.sql.exec("INSERT OR IGNORE INTO store_meta (key, value) VALUES ('organization_id', ?)", orgId);
	}

	/** Bulk rows `from..from+count-1` of one kind, straight into the store's SQLite (bench only). */
	async benchSeed(kind: Kind, orgId: string, from: number, count: number, baseTime: number): Promise<{ rows: number; bytes: number }> {
		await this.schemaVersion();
		this.own(orgId);
		const sql = this.ctx.storage.sql;
		const to = from + count - 1;
		this.ctx.storage.transactionSync(() => {
			if (kind === "products" && from === 1) {
				for (let c = 0; c < 5; c++) {
					sql.exec(
						"INSERT OR IGNORE INTO categories (id, organization_id, name, slug, version, created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?)",
						`cat_s${c}`,
						orgId,
						`Category ${c}`,
						`category-${c}`,
						baseTime,
						baseTime,
					);
				}
			}
			if (kind === "deliveries" && from === 1) {
				sql.exec(
					"INSERT OR IGNORE INTO webhook_endpoints (id, organization_id, url, event_types, secret, status, consecutive_failures, version, created_at, updated_at) VALUES ('whe_bench', ?, 'https://hooks.bench.local/in', '[\"*\"]', 'whsec_bench', 'enabled', 0, 1, ?, ?)",
					orgId,
					baseTime,
					baseTime,
				);
			}
			if (kind === "audit") {
				this.seedAudit(orgId, from, count, baseTime);
			} else {
				sql.exec(SEED_SQL[kind], from, to, orgId, baseTime).toArray();
			}
		});
		return { rows: count, bytes: sql.databaseSize };
	}

	/** Audit entries seq `from..`: linked and hashed exactly as appendAudit does, so verification walks them. */
	private seedAudit(orgId: string, from: number, count: number, baseTime: number): void {
		const sql = this.ctx.storage.sql;
		const head = sql.exec<{ seq: number; hash: string }>("SELECT seq, hash FROM audit_logs ORDER BY seq DESC LIMIT 1").toArray()[0];
		if ((head?.seq ?? 0) !== from - 1) throw new Error(`audit seed must continue the chain at ${(head?.seq ?? 0) + 1}, not ${from}`);
		let prev = head?.hash ?? "0".repeat(64);
		const actions = ["product.created", "product.updated", "order.created", "order.status_changed"];
		// Rows go in 2,000 at a time as one JSON array (json_each): one statement per slice, not per row.
		const insert = `INSERT INTO audit_logs (id, organization_id, seq, event_id, actor_type, actor_id, action, target_type, target_id, before, after, ip, country, user_agent, request_id, occurred_at, prev_hash, hash)
			SELECT j.value ->> 0, ?, j.value ->> 1, j.value ->> 2, 'user', j.value ->> 3, j.value ->> 4, 'product', j.value ->> 5, NULL, NULL, NULL, NULL, NULL, NULL, j.value ->> 6, j.value ->> 7, j.value ->> 8
			FROM json_each(?) AS j`;
		let slice: (string | number)[][] = [];
		for (let seq = from; seq < from + count; seq++) {
			const eventId = `evt_a${String(seq).padStart(8, "0")}`;
			const action = actions[seq % actions.length] as string;
			const actor = `user_a${seq % 10}`;
			const target = `prd_s${String(seq % 1000).padStart(8, "0")}`;
			const occurredAt = baseTime + Math.floor(seq / 10);
			const hash = sha256(canonical([orgId, seq, eventId, "user", actor, action, "product", target, null, null, null, null, null, null, occurredAt, prev]));
			slice.push([`log_s${String(seq).padStart(8, "0")}`, seq, eventId, actor, action, target, occurredAt, prev, hash]);
			prev = hash;
			if (slice.length === 2000 || seq === from + count - 1) {
				sql.exec(insert, orgId, JSON.stringify(slice));
				slice = [];
			}
		}
	}

	/**
	 * Isolation check of one store: rows of any data table whose organization_id is not the store's
	 * owner, and catalogue rows that do not name the owner (the fan-out names each product after its org).
	 */
	async benchCheck(): Promise<{ owner: string | null; bytes: number; foreignRows: number; products: number; orders: number }> {
		const stats = await this.stats();
		const owner = stats.organizationId;
		const sql = this.ctx.storage.sql;
		let foreignRows = 0;
		for (const table of TenantStoreObject.DATA_TABLES) {
			foreignRows += Number(
				sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table} WHERE organization_id IS NOT NULL AND organization_id IS NOT ?`, owner).one().n,
			);
		}
		foreignRows += Number(sql.exec<{ n: number }>("SELECT count(*) AS n FROM products WHERE instr(name, ?) = 0", `${owner} `).one().n);
		// The search index (store schema v3+; products_fts went in v5): every hit it returns names the owner.
		foreignRows += Number(sql.exec<{ n: number }>("SELECT count(*) AS n FROM products_search WHERE organization_id IS NOT ?", owner).one().n);
		return {
			owner,
			bytes: stats.databaseBytes,
			foreignRows,
			products: stats.counts.products ?? 0,
			orders: stats.counts.orders ?? 0,
		};
	}

	/** One statement in this store: its rows, rows read and query plan (for looking into a figure). */
	async benchQuery(query: string, params: SqlStorageValue[]): Promise<{ rowsRead: number; rows: number; plan: string[] }> {
		const sql = this.ctx.storage.sql;
		const plan = sql.exec<{ detail: string }>(`EXPLAIN QUERY PLAN ${query}`, ...params).toArray().map((r) => r.detail);
		const cursor = sql.exec(query, ...params);
		const rows = cursor.toArray().length;
		return { rowsRead: cursor.rowsRead, rows, plan };
	}
}

// --- D1 with counted rows_read ------------------------------------------------------------------

interface D1Count {
	rowsRead: number;
	detail: [number, string][];
}

const isRead = (q: string) => /^\s*(select|with)\b/i.test(q);

function countingStatement(real: D1PreparedStatement, query: string, count: D1Count): D1PreparedStatement {
	const note = (meta: D1Meta | undefined) => {
		const n = Number(meta?.rows_read ?? 0);
		count.rowsRead += n;
		count.detail.push([n, query.replace(/\s+/g, " ").slice(0, 160)]);
	};
	const wrapped = {
		real,
		bind: (...values: unknown[]) => countingStatement(real.bind(...values), query, count),
		async all() {
			const r = await real.all();
			note(r.meta);
			return r;
		},
		async run() {
			const r = await real.run();
			note(r.meta);
			return r;
		},
		async first(column?: string) {
			const r = await real.all<Record<string, unknown>>();
			note(r.meta);
			const row = r.results[0];
			if (!row) return null;
			return column ? row[column] : row;
		},
		async raw(options?: { columnNames?: boolean }) {
			// raw() reports no meta: the same statement's all() does (reads only; a write runs once, uncounted).
			if (isRead(query)) note((await real.all()).meta);
			return options?.columnNames ? real.raw({ columnNames: true }) : real.raw();
		},
	};
	return wrapped as unknown as D1PreparedStatement;
}

function countingD1(real: D1Database | D1DatabaseSession, count: D1Count): D1Database {
	const db = {
		prepare: (query: string) => countingStatement(real.prepare(query), query, count),
		async batch(statements: D1PreparedStatement[]) {
			const results = await real.batch(statements.map((s) => (s as unknown as { real: D1PreparedStatement }).real));
			for (const r of results) {
				const n = Number(r.meta?.rows_read ?? 0);
				count.rowsRead += n;
				count.detail.push([n, "batch statement"]);
			}
			return results;
		},
		exec: (query: string) => (real as D1Database).exec(query),
		dump: () => (real as D1Database).dump(),
		withSession: (constraint?: string) => countingD1((real as D1Database).withSession(constraint as D1SessionConstraint), count),
		getBookmark: () => (real as D1DatabaseSession).getBookmark?.() ?? null,
	};
	return db as unknown as D1Database;
}

// --- /__bench routes ------------------------------------------------------------------------------

const json = (v: unknown, status = 200) => Response.json(v, { status });

/** The Worker's settings as the gateway sends them to a store (src/middleware/tenant-store.ts): its string vars as JSON. */
function settingsOf(env: Env): string {
	return JSON.stringify(Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === "string")));
}

function benchAuth(orgId: string): AuthContext {
	return {
		userId: "user_bench",
		sessionId: "sess_bench",
		orgId,
		orgSlug: orgId,
		orgRole: "org:admin",
		orgPermissions: [],
		tokenVersion: 2,
		expiresAt: Math.floor(Date.now() / 1000) + 3600,
		issuedAt: Math.floor(Date.now() / 1000),
	};
}

const store = (env: Env, orgId: string) => env.TENANT_STORE.get(env.TENANT_STORE.idFromName(orgId)) as unknown as DurableObjectStub<BenchTenantStore>;

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
	const out: R[] = new Array(items.length);
	let next = 0;
	await Promise.all(
		Array.from({ length: Math.min(limit, items.length) }, async () => {
			while (next < items.length) {
				const i = next++;
				out[i] = await fn(items[i] as T);
			}
		}),
	);
	return out;
}

/** One tenant as a client would make it: a product (active, in stock), then an order of it, through the store's routes. */
async function createTenant(env: Env, orgId: string, settings: string): Promise<string | null> {
	const stub = store(env, orgId);
	const auth = benchAuth(orgId);
	const post = async (path: string, body: unknown) =>
		responseFromWire(
			await stub.serve(
				{
					method: "POST",
					url: `http://bench.local/api/orgs/${orgId}/${path}`,
					headers: [["content-type", "application/json"]],
					body: new TextEncoder().encode(JSON.stringify(body)).buffer as ArrayBuffer,
				},
				auth,
				orgId,
				settings,
			),
		);
	const p = await post("products", { name: `${orgId} widget`, sku: "W-1", priceMinor: 1250, currency: "USD", status: "active", stock: 10 });
	if (p.status !== 201) return `${orgId}: product ${p.status} ${await p.text()}`;
	const product = (await p.json()) as { id: string };
	const o = await post("orders", { items: [{ productId: product.id, quantity: 2 }] });
	if (o.status !== 201) return `${orgId}: order ${o.status} ${await o.text()}`;
	await o.arrayBuffer();
	return null;
}

async function bench(url: URL, req: Request, env: Env): Promise<Response> {
	const body = (req.method === "POST" ? await req.json() : {}) as Record<string, unknown>;
	switch (url.pathname) {
		// Directory rows generated in D1 itself: organizations with user_bench as admin, members, events (each
		// membership with its user's fields, as the Clerk consumer writes them: clerk-sync/shared.ts syncMemberUser).
		case "/__bench/orgs": {
			const { prefix, from, count, now } = body as { prefix: string; from: number; count: number; now: number };
			const to = from + count - 1;
			await env.DB.batch([
				env.DB.prepare(
					`WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
					INSERT INTO organizations (id, name, slug, source_updated_at, created_at, updated_at, rate_limit_per_minute, user_rate_limit_per_minute, monthly_quota, seat_limit)
					SELECT printf('%s%05d', ?3, i), printf('Tenant %d', i), printf('%s%05d', ?3, i), 1, ?4, ?4, 1000000000, 1000000000, 1000000000000, 1000000000 FROM n`,
				).bind(from, to, prefix, now),
				env.DB.prepare(
					`WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
					INSERT INTO memberships (id, organization_id, user_id, role, source_updated_at, created_at, updated_at, user_email)
					SELECT printf('orgmem_%s%05d', ?3, i), printf('%s%05d', ?3, i), 'user_bench', 'org:admin', 1, ?4, ?4, 'b@bench.local' FROM n`,
				).bind(from, to, prefix, now),
			]);
			return json({ ok: true });
		}
		case "/__bench/members": {
			const { orgId, from, count, now } = body as { orgId: string; from: number; count: number; now: number };
			const to = from + count - 1;
			await env.DB.batch([
				env.DB.prepare(
					`WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
					INSERT INTO users (id, email, first_name, last_name, source_updated_at, created_at, updated_at)
					SELECT printf('user_m%08d', i), printf('m%d@bench.local', i), 'Member', printf('%d', i), 1, ?3, ?3 FROM n`,
				).bind(from, to, now),
				env.DB.prepare(
					`WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
					INSERT INTO memberships (id, organization_id, user_id, role, source_updated_at, created_at, updated_at, user_email, user_first_name, user_last_name)
					SELECT printf('orgmem_m%08d', i), ?3, printf('user_m%08d', i), 'org:member', 1, ?4 + i / 10, ?4 + i / 10,
						printf('m%d@bench.local', i), 'Member', printf('%d', i) FROM n`,
				).bind(from, to, orgId, now),
			]);
			return json({ ok: true });
		}
		case "/__bench/events": {
			const { orgId, from, count, now } = body as { orgId: string; from: number; count: number; now: number };
			await env.DB.prepare(
				`WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
				INSERT INTO events (svix_id, source, type, entity_id, organization_id, payload, event_timestamp, received_at, processed_at, outcome)
				SELECT printf('msg_s%08d', i), 'clerk', CASE i % 3 WHEN 0 THEN 'organizationMembership.created' WHEN 1 THEN 'user.updated' ELSE 'organization.updated' END,
					printf('user_m%08d', i), ?3, '{}', ?4 + i / 10, ?4 + i / 10, ?4 + i / 10, 'processed' FROM n`,
			)
				.bind(from, from + count - 1, orgId, now)
				.run();
			return json({ ok: true });
		}
		// The directory's size in bytes (D1 reports it after a write; this one changes nothing).
		case "/__bench/d1size": {
			const r = await env.DB.prepare("UPDATE organizations SET name = name WHERE id = '__none__'").run();
			return json({ bytes: r.meta.size_after });
		}
		// A year of daily usage rows (usage_daily: one per organization and day) for organizations prefix+from…
		case "/__bench/usage": {
			const { prefix, from, count, days } = body as { prefix: string; from: number; count: number; days: number };
			await env.DB.prepare(
				`WITH RECURSIVE o(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM o WHERE i < ?2), d(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM d WHERE n < ?4 - 1)
				INSERT INTO usage_daily (organization_id, day, metric, count, updated_at)
				SELECT printf('%s%05d', ?3, i), date('2026-01-01', printf('+%d days', n)), 'api_calls', 1000 + n, 0 FROM o, d`,
			)
				.bind(from, from + count - 1, prefix, days)
				.run();
			return json({ ok: true });
		}
		case "/__bench/seed": {
			const { kind, orgId, from, count, now } = body as { kind: Kind; orgId: string; from: number; count: number; now: number };
			return json(await store(env, orgId).benchSeed(kind, orgId, from, count, now));
		}
		case "/__bench/query": {
			return json(await store(env, body.orgId as string).benchQuery(body.query as string, body.params as SqlStorageValue[]));
		}
		// Fan-out: each listed organization gets its store, a product and an order (at most `concurrency` calls in flight).
		case "/__bench/tenants": {
			const { orgIds, concurrency } = body as { orgIds: string[]; concurrency: number };
			const settings = settingsOf(env);
			const failures = (await pool(orgIds, concurrency, (id) => createTenant(env, id, settings))).filter((f) => f !== null);
			return json({ created: orgIds.length - failures.length, failures: failures.slice(0, 5) });
		}
		case "/__bench/check": {
			const { orgIds, concurrency } = body as { orgIds: string[]; concurrency: number };
			const checks = await pool(orgIds, concurrency, async (id) => ({ id, ...(await store(env, id).benchCheck()) }));
			return json({
				stores: checks.length,
				bytes: checks.reduce((a, c) => a + c.bytes, 0),
				foreignRows: checks.reduce((a, c) => a + c.foreignRows, 0),
				wrongOwner: checks.filter((c) => c.owner !== c.id).length,
				withProductAndOrder: checks.filter((c) => c.products === 1 && c.orders === 1).length,
			});
		}
		default:
			return json({ error: "unknown bench route" }, 404);
	}
}

export default {
	async fetch(req: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
		const url = new URL(req.url);
		if (url.pathname.startsWith("/__bench/")) return bench(url, req, env);
		if (req.headers.get("x-bench-d1") !== "1") return worker.fetch(req, env, ctx);
		const count: D1Count = { rowsRead: 0, detail: [] };
		const res = await worker.fetch(req, { ...env, DB: countingD1(env.DB, count) }, ctx);
		const out = new Response(res.body, res);
		out.headers.set("x-bench-d1-rows-read", String(count.rowsRead));
		out.headers.set("x-bench-d1-detail", JSON.stringify(count.detail));
		return out;
	},
	queue: worker.queue,
	scheduled: worker.scheduled,
} satisfies ExportedHandler<Env, unknown>;
