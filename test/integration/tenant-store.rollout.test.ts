import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { runScheduled } from "../../src/queue/consumer";
import { systemAudit } from "../../src/services/events-bus";
import { usageCounter } from "../../src/services/usage";
import type { AuthContext } from "../../src/auth/claims";
import { forgetStoreRoute, REFUSED, storeRoute, storeStub } from "../../src/tenant-store/directory";
import { LATEST_TENANT_SCHEMA } from "../../src/tenant-store/migrations";
import { COUNTED_TABLES } from "../../src/tenant-store/migrations/v2";
import { setStoreSchemaTarget, TenantStoreObject } from "../../src/tenant-store/object";
import { wireRequest } from "../../src/tenant-store/wire";
import { uid } from "../helpers/factories";
import { eventually } from "../helpers/wait";
import { signToken } from "../helpers/jwt";
import { type Body, call, callWithEnv, type Problem } from "../helpers/request";
import { holdStoreD1, inStore, storeOf, storeSql } from "../helpers/store";
import { captureTenantEvents, deliverTenant } from "../helpers/tenant-queue";
import { seedTenant, type Tenant } from "../helpers/tenant";
import { TEST_OPERATOR } from "../helpers/vars";

/** Operating tenant stores: a schema rollout across stores, residency, export and offboarding. */

type Row = Record<string, unknown>;
const slug = (prefix: string) => uid(prefix).toLowerCase().replaceAll("_", "-");

let operator: string;
beforeAll(async () => {
	operator = await signToken({ userId: TEST_OPERATOR, expiresIn: 3600 });
});

async function ok<T = Row>(method: string, path: string, token: string, body?: unknown, headers?: Record<string, string>): Promise<T> {
	const res = await call<T>(method, path, { token, body, headers });
	expect(res.status, `${method} ${path}: ${res.text}`).toBeLessThan(300);
	return res.json;
}

/** A category, two products (one with a variant), an order moved to paid: the catalogue and orders in use. */
async function useStore(t: Tenant) {
	const category = await ok<{ id: string }>("POST", `${t.base}/categories`, t.admin.token, { name: "Tea", slug: slug("tea") });
	const tea = await ok<{ id: string }>("POST", `${t.base}/products`, t.admin.token, {
		name: "Assam",
		sku: uid("SKU"),
		priceMinor: 25000,
		currency: "INR",
		status: "active",
		stock: 20,
		categoryId: category.id,
	});
	const cup = await ok<{ id: string }>("POST", `${t.base}/products`, t.admin.token, { name: "Cup", sku: uid("SKU"), priceMinor: 900, currency: "INR", status: "active", stock: 5 });
	const variant = await ok<{ id: string }>("POST", `${t.base}/products/${tea.id}/variants`, t.admin.token, { name: "Large", sku: uid("VAR"), stock: 4 });
	const order = await ok<{ id: string }>(
		"POST",
		`${t.base}/orders`,
		t.admin.token,
		{ items: [{ productId: tea.id, quantity: 2 }, { productId: cup.id, quantity: 1 }, { productId: tea.id, variantId: variant.id, quantity: 1 }] },
		{ "Idempotency-Key": uid("idem") },
	);
	await ok("POST", `${t.base}/orders/${order.id}/status`, t.admin.token, { status: "paid" });
	return { category, tea, cup, variant, order };
}

const schemaOf = async (orgId: string) => {
	const [meta] = await storeSql<{ value: string }>(orgId, "SELECT value FROM store_meta WHERE key = 'schema_version'");
	const counters = await storeSql(orgId, "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'store_counters'");
	return { version: Number(meta?.value), hasCounters: counters.length === 1 };
};
const recorded = async (orgIds: string[]) =>
	Promise.all(
		orgIds.map(async (id) => (await env.DB.prepare("SELECT store_schema_version AS v FROM organizations WHERE id = ?").bind(id).first<{ v: number | null }>())?.v),
	);

describe("schema rollout: v1 → v2 → v3 → v4 → v5 → v6 reaches every store while the previous version's code still reads", () => {
	afterEach(() => setStoreSchemaTarget(LATEST_TENANT_SCHEMA));

	it("stores created and used at v1 migrate when the cron nudges them; the directory records each version; v1 reads work; counters are exact", async () => {
		expect(LATEST_TENANT_SCHEMA).toBe(6);
		setStoreSchemaTarget(1);
		const tenants = await Promise.all(Array.from({ length: 6 }, () => seedTenant()));
		const ids = tenants.map((t) => t.orgId);
		const used = await Promise.all(tenants.map((t) => useStore(t)));
		const productsBefore = await Promise.all(
			tenants.map(async (t) => (await call<Body<"GET /api/orgs/:orgId/products">>("GET", `${t.base}/products`, { token: t.member.token })).json),
		);
		for (const id of ids) expect(await schemaOf(id)).toEqual({ version: 1, hasCounters: false });
		expect(await recorded(ids)).toEqual(ids.map(() => null));

		// The cron under v1 code records what the stores run.
		await runScheduled(env, Date.now());
		expect(await recorded(ids)).toEqual(ids.map(() => 1));

		// The deploy of v2: no request reaches these stores, the cron's nudge migrates them all.
		setStoreSchemaTarget(2);
		await runScheduled(env, Date.now());
		expect(await recorded(ids)).toEqual(ids.map(() => 2));
		for (const id of ids) expect(await schemaOf(id)).toEqual({ version: 2, hasCounters: true });

		for (const [i, t] of tenants.entries()) {
			// v1-shaped reads (the columns v1 code selects) still work on a v2 store, through SQL and the API.
			const v1Rows = await storeSql<Row>(
				t.orgId,
				"SELECT id, organization_id, category_id, name, sku, description, price_minor, currency, status, stock, version, created_at, updated_at FROM products ORDER BY created_at, id",
			);
			expect(v1Rows.map((r) => r.id)).toEqual([used[i]?.tea.id, used[i]?.cup.id]);
			const products = await call<Body<"GET /api/orgs/:orgId/products">>("GET", `${t.base}/products`, { token: t.member.token });
			expect(products.json).toEqual(productsBefore[i]);
			const order = await call("GET", `${t.base}/orders/${used[i]?.order.id}`, { token: t.member.token });
			expect(order.status, order.text).toBe(200);
			// The maintained counters equal the real counts.
			const counters = Object.fromEntries((await storeSql<{ name: string; value: number }>(t.orgId, "SELECT name, value FROM store_counters")).map((r) => [r.name, r.value]));
			for (const table of COUNTED_TABLES) {
				const [real] = await storeSql<{ n: number }>(t.orgId, `SELECT count(*) AS n FROM ${table}`);
				expect(counters[table], `${table} of ${t.orgId}`).toBe(real?.n);
			}
			expect(counters).toMatchObject({ products: 2, variants: 1, categories: 1, orders: 1 });
		}

		// Kept exact by later writes.
		const [t0] = tenants as [Tenant];
		const temp = await ok<{ id: string }>("POST", `${t0.base}/products`, t0.admin.token, { name: "Temp", sku: uid("SKU"), priceMinor: 1, currency: "INR" });
		expect((await storeSql(t0.orgId, "SELECT value FROM store_counters WHERE name = 'products'"))[0]).toEqual({ value: 3 });
		await ok("DELETE", `${t0.base}/products/${temp.id}`, t0.admin.token);
		await ok("POST", `${t0.base}/categories`, t0.admin.token, { name: "More", slug: slug("more") });
		const after = Object.fromEntries((await storeSql<{ name: string; value: number }>(t0.orgId, "SELECT name, value FROM store_counters")).map((r) => [r.name, r.value]));
		const [realProducts] = await storeSql<{ n: number }>(t0.orgId, "SELECT count(*) AS n FROM products");
		expect(after).toMatchObject({ categories: 2, products: 2 });
		expect(realProducts?.n).toBe(2);
		expect((await storeOf(t0.orgId).stats()).counts).toEqual(after);

		// The deploy of v3 (products_search): the cron moves every store on; v2 code's search (products_fts,
		// still maintained by its triggers) and v3's (through the API) find the same products, also after a
		// rename, a new product and a deletion.
		setStoreSchemaTarget(3);
		await runScheduled(env, Date.now());
		expect(await recorded(ids)).toEqual(ids.map(() => 3));
		const v2Search = (orgId: string, text: string) =>
			storeSql<{ id: string }>(
				orgId,
				"SELECT products.id FROM products JOIN products_fts ON products_fts.product_id = products.id WHERE products_fts MATCH ? ORDER BY products_fts.rowid",
				`"${text}"`,
			);
		const v3Search = async (t: Tenant, text: string) =>
			(await call<Body<"GET /api/orgs/:orgId/products">>("GET", `${t.base}/products?q=${encodeURIComponent(text)}`, { token: t.member.token })).json.data.map((p) => p.id);
		for (const [i, t] of tenants.entries()) {
			expect((await v2Search(t.orgId, "ssa")).map((r) => r.id)).toEqual([used[i]?.tea.id]);
			expect(await v3Search(t, "ssa")).toEqual([used[i]?.tea.id]);
		}
		const [t1] = tenants.slice(1) as [Tenant];
		const tea1 = used[1]?.tea.id as string;
		await ok("PATCH", `${t1.base}/products/${tea1}`, t1.admin.token, { name: "Darjeeling" });
		const mug = await ok<{ id: string }>("POST", `${t1.base}/products`, t1.admin.token, { name: "Darjeeling mug", sku: uid("SKU"), priceMinor: 1, currency: "INR" });
		await ok("DELETE", `${t1.base}/products/${used[1]?.cup.id}`, t1.admin.token);
		for (const [text, want] of [
			["ssa", []],
			["jeeling", [tea1, mug.id]],
			["Cup", []],
		] as const) {
			expect((await v2Search(t1.orgId, text)).map((r) => r.id), `v2 ${text}`).toEqual(want);
			expect(await v3Search(t1, text), `v3 ${text}`).toEqual(want);
		}
		// The index holds no stale entry: FTS5's own integrity check against its content table.
		await storeSql(t1.orgId, "INSERT INTO products_search (products_search, rank) VALUES ('integrity-check', 1)");

		// The deploy of v4 (the usage ledger in the store). Until now the stores metered through each
		// tenant's UsageCounter; its rollups in D1 (written behind by its alarm) are where a ledger starts.
		const legacy = usageCounter(env, t1.orgId);
		// Held below v4, a store reports the UsageCounter's count (which this call is in).
		const report = await call<Body<"GET /api/orgs/:orgId/usage">>("GET", `${t1.base}/usage`, { token: t1.admin.token });
		expect(report.status, report.text).toBe(200);
		const counted = (await legacy.summary()).used;
		expect(report.json.used).toBe(counted);
		expect(counted).toBeGreaterThan(0);
		await runDurableObjectAlarm(legacy);
		setStoreSchemaTarget(4);
		await runScheduled(env, Date.now());
		expect(await recorded(ids)).toEqual(ids.map(() => 4));
		await ok("GET", `${t1.base}/products`, t1.member.token);
		expect((await storeOf(t1.orgId).usageSummary()).used).toBe(counted + 1);
		expect((await legacy.summary()).used).toBe(counted);

		// The deploy of v5, the contraction of v3: products_fts and its triggers go. The code of the release
		// before (v4, which searches products_search) still finds the same products on a v5 store, and a
		// product write maintains only products_search.
		const ftsObjects = (orgId: string) =>
			storeSql<{ name: string }>(orgId, "SELECT name FROM sqlite_master WHERE name LIKE 'products_fts%' ORDER BY name");
		expect((await ftsObjects(t1.orgId)).length).toBeGreaterThan(0);
		setStoreSchemaTarget(5);
		await runScheduled(env, Date.now());
		expect(await recorded(ids)).toEqual(ids.map(() => 5));
		for (const id of ids) expect(await ftsObjects(id)).toEqual([]);
		const pot = await ok<{ id: string }>("POST", `${t1.base}/products`, t1.admin.token, { name: "Darjeeling pot", sku: uid("SKU"), priceMinor: 1, currency: "INR" });
		expect(await v3Search(t1, "jeeling")).toEqual([tea1, mug.id, pot.id]);
		await storeSql(t1.orgId, "INSERT INTO products_search (products_search, rank) VALUES ('integrity-check', 1)");

		// The deploy of v6 (an expansion: when an endpoint's run of failed deliveries began). A store at v5 has
		// no such column; at v6 it has, and the columns v5 code reads are as they were.
		const failingSince = (orgId: string) => storeSql(orgId, "SELECT failing_since FROM webhook_endpoints");
		await expect(failingSince(t1.orgId)).rejects.toThrow(/failing_since/);
		// An endpoint as v5 code writes it (its columns), failing: after v6 the same row reads the same.
		const v5Columns = "id, organization_id, url, event_types, secret, status, consecutive_failures, disabled_reason, version, created_at, updated_at";
		await storeSql(
			t1.orgId,
			`INSERT INTO webhook_endpoints (${v5Columns}) VALUES (?, ?, 'https://hooks.tenant.example.com/in', '["*"]', 'whsec_x', 'enabled', 3, NULL, 1, 1, 1)`,
			"we_v5",
			t1.orgId,
		);
		const asV5 = await storeSql(t1.orgId, `SELECT ${v5Columns} FROM webhook_endpoints`);
		setStoreSchemaTarget(6);
		await runScheduled(env, Date.now());
		expect(await recorded(ids)).toEqual(ids.map(() => 6));
		for (const id of ids) expect(await failingSince(id)).toEqual(id === t1.orgId ? [{ failing_since: null }] : []);
		expect(await storeSql(t1.orgId, `SELECT ${v5Columns} FROM webhook_endpoints`)).toEqual(asV5);
		expect(asV5).toEqual([expect.objectContaining({ id: "we_v5", consecutive_failures: 3 })]);
		await storeSql(t1.orgId, "DELETE FROM webhook_endpoints");

		// Nothing left behind: another run nudges none of them.
		await runScheduled(env, Date.now());
		expect(await recorded(ids)).toEqual(ids.map(() => 6));
	});
});

describe("residency: a tenant with data region eu", () => {
	it("workerd refuses Durable Object jurisdictions; an eu tenant is still served, from its own object apart from the default one", async () => {
		// What Miniflare (workerd) does: no jurisdictions at all. Deployed, storeStub uses jurisdiction("eu").
		expect(() => env.TENANT_STORE.jurisdiction("eu")).toThrow(/Jurisdiction restrictions are not implemented in workerd/);

		const t = await seedTenant();
		await env.DB.prepare("UPDATE organizations SET data_region = 'eu' WHERE id = ?").bind(t.orgId).run();
		forgetStoreRoute(t.orgId);
		const { tea } = await useStore(t);
		expect((await call("GET", `${t.base}/products/${tea.id}`, { token: t.member.token })).status).toBe(200);

		// Locally the EU store is the object named eu:<orgId>: not the one a default-region tenant of that id would get.
		const euId = env.TENANT_STORE.idFromName(`eu:${t.orgId}`);
		const defaultId = env.TENANT_STORE.idFromName(t.orgId);
		expect(euId.equals(defaultId)).toBe(false);
		const count = async (id: DurableObjectId) =>
			runInDurableObject(env.TENANT_STORE.get(id), (_o, state) => state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM products").one().n);
		expect(await count(euId)).toBe(2);
		expect(await count(defaultId)).toBe(0);
		// Operator paths find the same store: the export has its rows.
		expect((await exportOf(t.orgId)).of("product").map((p) => p.id)).toContain(tea.id);
	});

	it("an operator's move of an empty tenant to eu: its next write and the move's own audit entry land in the eu store", async () => {
		const t = await seedTenant();
		// This isolate routes the tenant to its default-region store (a read: no record written).
		expect((await call("GET", `${t.base}/products`, { token: t.member.token })).status).toBe(200);
		const sent = captureTenantEvents(vi);
		const moved = await call<Body<"GET /api/admin/orgs/:orgId">>("PATCH", `/api/admin/orgs/${t.orgId}`, {
			token: operator,
			body: { dataRegion: "eu" },
			settle: true,
		});
		expect(moved.status, moved.text).toBe(200);
		expect(moved.json).toMatchObject({ dataRegion: "eu", hasData: false });
		await deliverTenant(sent.filter((m) => m.organizationId === t.orgId));
		const category = await ok<{ id: string }>("POST", `${t.base}/categories`, t.admin.token, { name: "Tea", slug: slug("tea") });

		const { of } = await exportOf(t.orgId);
		expect(of("category").map((c) => c.id)).toEqual([category.id]);
		expect(of("audit_entry").map((e) => e.action)).toEqual(["organization.operator_updated", "category.created"]);
		expect(of("organization")).toEqual([expect.objectContaining({ dataRegion: "eu", hasData: true })]);
		// Nothing stranded in the default-region store.
		expect(await storeSql(t.orgId, "SELECT (SELECT count(*) FROM categories) + (SELECT count(*) FROM audit_logs) AS n")).toEqual([{ n: 0 }]);
	});
});

describe("a data region change retires the old region's store", () => {
	type Region = "default" | "eu";
	const regionOf = async (orgId: string) =>
		(await env.DB.prepare("SELECT data_region AS r FROM organizations WHERE id = ?").bind(orgId).first<{ r: Region }>())?.r;

	/**
	 * This isolate's cached route says `region` while the directory names the other one: what another
	 * isolate that cached the route before the change still holds (for up to 10 minutes).
	 */
	async function staleRoute(orgId: string, region: Region) {
		const current = await regionOf(orgId);
		await env.DB.prepare("UPDATE organizations SET data_region = ? WHERE id = ?").bind(region, orgId).run();
		forgetStoreRoute(orgId);
		expect(await storeRoute(env, orgId)).toEqual({ state: "store", region });
		await env.DB.prepare("UPDATE organizations SET data_region = ? WHERE id = ?").bind(current, orgId).run();
	}

	/** Rows of the store's data tables (TenantStoreObject.DATA_TABLES: what export and "has data" count). */
	const rowsIn = (stub: ReturnType<typeof storeStub>) =>
		runInDurableObject(stub, (_o, state) =>
			TenantStoreObject.DATA_TABLES.reduce((n, t) => n + state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${t}`).one().n, 0),
		);

	/** An empty tenant moved to eu by an operator (its move's audit entry held back, so the eu store is empty too). */
	async function movedToEu() {
		const t = await seedTenant();
		// Served once from the default-region store: this isolate caches its route, as any other would.
		expect((await call("GET", `${t.base}/products`, { token: t.member.token })).status).toBe(200);
		const sent = captureTenantEvents(vi);
		const moved = await call<Body<"GET /api/admin/orgs/:orgId">>("PATCH", `/api/admin/orgs/${t.orgId}`, { token: operator, body: { dataRegion: "eu" } });
		expect(moved.status, moved.text).toBe(200);
		expect(moved.json).toMatchObject({ dataRegion: "eu", hasData: false });
		vi.restoreAllMocks();
		return { t, sent: sent.filter((m) => m.organizationId === t.orgId), old: storeStub(env, t.orgId, "default"), eu: storeStub(env, t.orgId, "eu") };
	}

	it("the old store refuses, writing nothing, what a stale route sends it (requests, queue events, rate-limit takes, meters); stats, export and wipe still answer", async () => {
		const { t, old } = await movedToEu();
		expect(await old.stats()).toMatchObject({ state: "retired", organizationId: t.orgId });
		// The member's mirrored directory answer (from the request before the move) is dropped too.
		expect(await runInDurableObject(old, (_o, state) => state.storage.sql.exec("SELECT principal FROM mirror_access").toArray())).toEqual([]);
		const auth: AuthContext = { userId: t.admin.id, sessionId: null, orgId: null, orgSlug: null, orgRole: null, orgPermissions: [], tokenVersion: 2, expiresAt: 0 };
		const post = new Request(`https://api.test${t.base}/categories`, {
			method: "POST",
			headers: { "content-type": "application/json" },
			body: JSON.stringify({ name: "Tea", slug: slug("tea") }),
		});
		const calls = {
			serve: old.serve(await wireRequest(post, {}), auth, t.orgId),
			apply: old.apply([systemAudit({ organizationId: t.orgId, action: "membership.created" })]),
			deliver: old.deliver(uid("dlv"), t.orgId),
			take: old.take(`org:${t.orgId}`, { limit: 10, windowMs: 60_000, want: 1 }),
			meter: old.meter(t.orgId, { quota: 1000 }),
			directoryChanged: old.directoryChanged(),
			usageSummary: old.usageSummary(),
		};
		const settled = await Promise.allSettled(Object.values(calls));
		const outcome = (r: PromiseSettledResult<unknown>) => (r.status === "rejected" ? String(r.reason) : "served");
		expect(Object.fromEntries(Object.keys(calls).map((name, i) => [name, outcome(settled[i]!)]))).toEqual(
			Object.fromEntries(Object.keys(calls).map((name) => [name, `Error: ${REFUSED}`])),
		);
		expect(await rowsIn(old)).toBe(0);
		expect(await old.hasRecords()).toBe(false);
		expect(await new Response(await old.exportNdjson()).text()).toBe("");
		await old.wipe();
	});

	it("a stale route in the gateway: the old store refuses, the route is forgotten and the request is served by the new region's store", async () => {
		const { t, old, eu } = await movedToEu();
		await staleRoute(t.orgId, "default");
		const created = await call<{ id: string }>("POST", `${t.base}/categories`, { token: t.admin.token, body: { name: "Tea", slug: slug("tea") } });
		expect(created.status, created.text).toBe(201);
		expect(await storeRoute(env, t.orgId)).toEqual({ state: "store", region: "eu" });
		expect(await runInDurableObject(eu, (_o, state) => state.storage.sql.exec("SELECT id FROM categories").toArray())).toEqual([{ id: created.json.id }]);
		expect(await rowsIn(old)).toBe(0);
	});

	it("a stale route in the Worker's rate limiter: reads and writes take from the new region's store (not failing open or closed)", async () => {
		const { t, old } = await movedToEu();
		const limited = { RATE_LIMIT_MODE: "lease" };
		await staleRoute(t.orgId, "default");
		const read = await callWithEnv(limited, "GET", `${t.base}/api-keys`, { token: t.admin.token });
		expect(read.status, read.text).toBe(200);
		// A limiter that failed open answers without RateLimit-* headers.
		expect(read.headers.get("ratelimit-limit")).not.toBeNull();
		await staleRoute(t.orgId, "default");
		const write = await callWithEnv(limited, "POST", `${t.base}/api-keys`, { token: t.admin.token, body: { name: "ci", permissions: [] } });
		expect(write.status, write.text).toBe(201);
		expect(write.headers.get("ratelimit-limit")).not.toBeNull();
		expect(await storeRoute(env, t.orgId)).toEqual({ state: "store", region: "eu" });
		expect(await rowsIn(old)).toBe(0);
	});

	it("a stale route in the tenant-events consumer: the events are applied in the new region's store", async () => {
		const { t, old, sent, eu } = await movedToEu();
		await staleRoute(t.orgId, "default");
		const result = await deliverTenant(sent);
		expect(result.explicitAcks, JSON.stringify(result)).toHaveLength(sent.length);
		expect(await runInDurableObject(eu, (_o, state) => state.storage.sql.exec("SELECT action FROM audit_logs").toArray())).toEqual([
			{ action: "organization.operator_updated" },
		]);
		expect(await rowsIn(old)).toBe(0);
	});

	it("a move back reinstates the original store; a store left retired (the PATCH failed after retiring it) is reinstated by a PATCH of its region", async () => {
		const { t, old, eu } = await movedToEu();
		const back = await call<Body<"GET /api/admin/orgs/:orgId">>("PATCH", `/api/admin/orgs/${t.orgId}`, { token: operator, body: { dataRegion: "default" } });
		expect(back.status, back.text).toBe(200);
		expect(back.json).toMatchObject({ dataRegion: "default", hasData: false });
		expect((await old.stats()).state).toBe("active");
		expect((await eu.stats()).state).toBe("retired");
		await ok("POST", `${t.base}/categories`, t.admin.token, { name: "Tea", slug: slug("tea") });
		expect(await rowsIn(old)).toBeGreaterThan(0);
		expect(await rowsIn(eu)).toBe(0);

		// Retired while the directory still names it (the PATCH's directory update not committed yet, or
		// failed): 503 problem+json with Retry-After 1, and the tenant-events consumer retries.
		const other = await seedTenant();
		expect(await storeOf(other.orgId).retire(true)).toBe(false);
		const down = await call<Problem>("GET", `${other.base}/products`, { token: other.member.token });
		expect(down.status, down.text).toBe(503);
		expect(down.headers.get("content-type")).toContain("application/problem+json");
		expect(down.json).toMatchObject({ status: 503, code: "UPSTREAM_UNAVAILABLE" });
		expect(down.headers.get("retry-after")).toBe("1");
		const event = systemAudit({ organizationId: other.orgId, action: "membership.created" });
		const waited = await deliverTenant([event]);
		expect(waited.retryMessages.map((m: { msgId: string }) => m.msgId), JSON.stringify(waited)).toEqual(waited.ids);
		expect(await rowsIn(storeOf(other.orgId))).toBe(0);
		const same = await call("PATCH", `/api/admin/orgs/${other.orgId}`, { token: operator, body: { dataRegion: "default" } });
		expect(same.status, same.text).toBe(200);
		expect((await call("GET", `${other.base}/products`, { token: other.member.token })).status).toBe(200);
	});

	it("a store holding a record is not retired (409) and serves on; a retirement waits for the requests under way, then checks again", async () => {
		const t = await seedTenant();
		await ok("POST", `${t.base}/categories`, t.admin.token, { name: "Tea", slug: slug("tea") });
		const refused = await call<Problem>("PATCH", `/api/admin/orgs/${t.orgId}`, { token: operator, body: { dataRegion: "eu" } });
		expect(refused.status, refused.text).toBe(409);
		expect((await storeOf(t.orgId).stats()).state).toBe("active");
		expect((await call("GET", `${t.base}/categories`, { token: t.member.token })).status).toBe(200);

		// A request under way (held open here) when the PATCH comes: its write lands before the check.
		const empty = await seedTenant();
		let release = () => {};
		const underWay = new Promise<void>((resolve) => (release = resolve));
		await inStore(empty.orgId, (store) => (store as unknown as { serving: Set<Promise<unknown>> }).serving.add(underWay));
		let answered = false;
		const patch = call<Problem>("PATCH", `/api/admin/orgs/${empty.orgId}`, { token: operator, body: { dataRegion: "eu" } }).then((r) => {
			answered = true;
			return r;
		});
		await ok("POST", `${empty.base}/categories`, empty.admin.token, { name: "Tea", slug: slug("tea") });
		expect(answered).toBe(false);
		release();
		expect((await patch).status).toBe(409);
		expect((await storeOf(empty.orgId).stats()).state).toBe("active");
	});
});

type ExportLine = { type: string; data: Row; endpointId?: string };

/** The export, read as a client would: a stream of UTF-8 bytes (decoded, not .text(): workerd warns on a non-text type). */
async function exportOf(orgId: string) {
	const res = await exports.default.fetch(
		new Request(`https://api.test/api/admin/orgs/${orgId}/export`, { headers: { authorization: `Bearer ${operator}` } }),
	);
	const text = new TextDecoder().decode(await res.arrayBuffer());
	expect(res.status, text).toBe(200);
	expect(res.headers.get("content-type")).toBe("application/x-ndjson");
	expect(text.endsWith("\n")).toBe(true);
	const lines = text.trimEnd().split("\n").map((l) => JSON.parse(l) as ExportLine);
	for (const l of lines) expect(Object.keys(l).sort()).toEqual(l.endpointId ? ["data", "endpointId", "type"] : ["data", "type"]);
	const of = (type: string) => lines.filter((l) => l.type === type).map((l) => l.data);
	return { lines, of };
}

/** Directory rows the API does not render (seeded as the payment, billing, usage and webhook paths write them). */
async function seedDirectoryRows(orgId: string, userId: string) {
	const now = Date.now();
	const ids = { paymentOrder: uid("po"), subscription: uid("sub"), transaction: uid("ptx"), invitation: uid("inv"), event: uid("msg") };
	await env.DB.batch([
		env.DB.prepare(
			"INSERT INTO payment_orders (id, organization_id, razorpay_order_id, amount, currency, receipt, status, created_by, created_at, updated_at) VALUES (?, ?, ?, 50000, 'INR', 'r-1', 'PAID', ?, ?, ?)",
		).bind(ids.paymentOrder, orgId, uid("order"), userId, now, now),
		env.DB.prepare(
			"INSERT INTO payment_transactions (id, organization_id, payment_order_id, razorpay_payment_id, amount, currency, status, source, created_at, updated_at) VALUES (?, ?, ?, ?, 50000, 'INR', 'captured', 'verify', ?, ?)",
		).bind(ids.transaction, orgId, ids.paymentOrder, uid("pay"), now, now),
		env.DB.prepare(
			"INSERT INTO subscriptions (organization_id, provider, customer_id, subscription_id, plan, status, source_updated_at, updated_at) VALUES (?, 'stripe', 'cus_1', ?, 'pro', 'active', ?, ?)",
		).bind(orgId, ids.subscription, now, now),
		env.DB.prepare("INSERT INTO usage_daily (organization_id, day, metric, count, updated_at) VALUES (?, '2026-01-02', 'api_calls', 42, ?)").bind(orgId, now),
		env.DB.prepare(
			"INSERT INTO invitations (id, organization_id, email, role, status, source_updated_at, created_at, updated_at) VALUES (?, ?, 'new@example.com', 'org:member', 'pending', 1, ?, ?)",
		).bind(ids.invitation, orgId, now, now),
		env.DB.prepare(
			"INSERT INTO events (svix_id, organization_id, source, type, entity_id, payload, event_timestamp, received_at, processed_at, outcome) VALUES (?, ?, 'clerk', 'organization.updated', ?, '{}', ?, ?, ?, 'processed')",
		).bind(ids.event, orgId, orgId, now, now, now),
	]);
	return ids;
}

describe("GET /api/admin/orgs/:orgId/export", () => {
	it("streams every record of a tenant as NDJSON, its data as the API answers it", async () => {
		const t = await seedTenant({ plan: "pro" });
		const endpoint = await ok<{ id: string }>("POST", `${t.base}/webhooks`, t.admin.token, { url: "https://hooks.tenant.example.com/in", eventTypes: ["order.created"] });
		const used = await useStore(t);
		const key = await ok<{ id: string; secret: string }>("POST", `${t.base}/api-keys`, t.admin.token, { name: "ci", permissions: ["org:products:read"] });
		const revoked = await ok<{ id: string }>("POST", `${t.base}/api-keys`, t.admin.token, { name: "old", permissions: [] });
		await ok("DELETE", `${t.base}/api-keys/${revoked.id}`, t.admin.token);
		// The API keys' audit entries reach the store through the tenant-events queue (the directory's outbox):
		// wait for the three, so the export and the audit log read afterwards hold the same entries.
		const keyEntries = await eventually(
			async () => (await call<{ data: Row[] }>("GET", `${t.base}/audit-logs?limit=100`, { token: t.admin.token })).json.data.filter((e) => String(e.action).startsWith("api_key.")),
			(entries) => entries.length === 3,
		);
		expect(keyEntries).toHaveLength(3);
		await ok("GET", `${t.base}/audit-logs/verify`, t.admin.token);
		const seeded = await seedDirectoryRows(t.orgId, t.admin.id);

		const { lines, of } = await exportOf(t.orgId);
		const types = new Set(lines.map((l) => l.type));
		for (const type of [
			"organization",
			"member",
			"invitation",
			"api_key",
			"revoked_api_key",
			"subscription",
			"payment_order",
			"payment_transaction",
			"usage_day",
			"event",
			"category",
			"product",
			"variant",
			"order",
			"audit_entry",
			"audit_checkpoint",
			"webhook_endpoint",
			"webhook_delivery",
			"idempotency_key",
		]) {
			expect(types, type).toContain(type);
		}

		// The API's own JSON for what the API renders.
		const api = async (path: string) => (await call<{ data: Row[] }>("GET", `${t.base}${path}`, { token: t.admin.token })).json;
		expect(of("organization")).toEqual([(await call("GET", `/api/admin/orgs/${t.orgId}`, { token: operator })).json]);
		expect(of("member")).toEqual((await api("/members?limit=100")).data);
		expect(of("category")).toEqual((await api("/categories?limit=100")).data);
		expect(of("product")).toEqual((await api("/products?limit=100")).data);
		expect(of("variant")).toEqual((await api(`/products/${used.tea.id}/variants`)).data);
		expect(of("order")).toEqual([await ok("GET", `${t.base}/orders/${used.order.id}`, t.admin.token)]);
		expect(of("webhook_endpoint")).toEqual((await api("/webhooks")).data);
		expect(of("api_key")).toEqual((await api("/api-keys")).data);
		expect(of("api_key").map((k) => k.id)).toEqual([key.id]);
		expect(of("event")).toEqual((await api("/events")).data);
		const audit = (await api("/audit-logs?limit=100")).data;
		expect(of("audit_entry")).toEqual([...audit].sort((a, b) => Number(a.seq) - Number(b.seq)));
		expect(audit.length).toBeGreaterThanOrEqual(6);
		const deliveries = (await api(`/webhooks/${endpoint.id}/deliveries`)).data;
		expect(deliveries.length).toBeGreaterThan(0);
		expect(of("webhook_delivery").map((d) => d.id).sort()).toEqual(deliveries.map((d) => d.id).sort());
		expect(lines.filter((l) => l.type === "webhook_delivery").every((l) => l.endpointId === endpoint.id)).toBe(true);
		expect(Object.keys(of("webhook_delivery")[0] ?? {}).sort()).toEqual(Object.keys(deliveries[0] ?? {}).sort());

		// A payment order as GET /api/payments/orders/:id answers it (the organization taken from the token).
		const payer = await signToken({ userId: t.admin.id, orgId: t.orgId, role: "org:admin", expiresIn: 3600 });
		expect(of("payment_order")).toEqual([await ok("GET", `/api/payments/orders/${seeded.paymentOrder}`, payer)]);
		// Stored columns for the rest (no route answers a subscription as such); never a secret or a key's hash.
		expect(of("payment_transaction")).toEqual([expect.objectContaining({ id: seeded.transaction, payment_order_id: seeded.paymentOrder })]);
		expect(of("subscription")).toEqual([expect.objectContaining({ subscription_id: seeded.subscription, plan: "pro" })]);
		expect(of("usage_day")).toEqual([expect.objectContaining({ day: "2026-01-02", metric: "api_calls", count: 42 })]);
		expect(of("invitation")).toEqual([expect.objectContaining({ id: seeded.invitation, email: "new@example.com" })]);
		expect(of("revoked_api_key")).toEqual([expect.objectContaining({ id: revoked.id, revoked_at: expect.any(Number) })]);
		expect(of("revoked_api_key")[0]).not.toHaveProperty("hash");
		expect(of("audit_checkpoint")).toEqual([expect.objectContaining({ organization_id: t.orgId, seq: expect.any(Number) })]);
		expect(of("idempotency_key")).toEqual([expect.objectContaining({ organization_id: t.orgId, state: "done" })]);
		const text = lines.map((l) => JSON.stringify(l)).join("\n");
		expect(text).not.toContain(key.secret);
		expect(text).not.toContain("whsec_");
		// Only this tenant's records.
		expect(lines.every((l) => !("organization_id" in l.data) || l.data.organization_id === t.orgId)).toBe(true);
	});

	it("404 for an unknown organization", async () => {
		const res = await call<Problem>("GET", "/api/admin/orgs/org_missing/export", { token: operator });
		expect(res.status).toBe(404);
		expect(res.headers.get("content-type")).toBe("application/problem+json");
	});
});

describe("GET /api/admin/orgs/:orgId/export of a store that has only received events", () => {
	it("holds what the events wrote: the events bind the store to their organization", async () => {
		const t = await seedTenant();
		await deliverTenant([systemAudit({ organizationId: t.orgId, action: "member.created", targetType: "membership", targetId: t.member.id })]);
		expect((await storeOf(t.orgId).stats()).organizationId).toBe(t.orgId);
		const res = await call("GET", `/api/admin/orgs/${t.orgId}/export`, { token: operator });
		expect(res.status, res.text).toBe(200);
		const entries = res.text.trim().split("\n").map((l) => JSON.parse(l) as { type: string; data: Row }).filter((l) => l.type === "audit_entry");
		expect(entries).toEqual([expect.objectContaining({ data: expect.objectContaining({ action: "member.created", seq: 1 }) })]);
		// Another organization's event is refused by a bound store.
		const other = await seedTenant();
		const refused = await inStore(t.orgId, (store) =>
			store.apply([systemAudit({ organizationId: other.orgId, action: "member.created" })]).then(
				() => "applied",
				(err: unknown) => String(err),
			),
		);
		expect(refused).toMatch(/another organization/);
	});
});

describe("DELETE /api/admin/orgs/:orgId", () => {
	it("wipes the tenant's store and keeps its directory row as deleted; its routes then answer 404", async () => {
		const t = await seedTenant({ plan: "pro" });
		const { tea } = await useStore(t);
		expect((await storeOf(t.orgId).stats()).counts.products).toBe(2);

		const res = await call<Body<"DELETE /api/admin/orgs/:orgId", 202>>("DELETE", `/api/admin/orgs/${t.orgId}`, { token: operator });
		expect(res.status, res.text).toBe(202);
		expect(res.json).toEqual({ status: "deleted", organizationId: t.orgId, deletedAt: expect.any(Number) });

		for (const [method, path, body] of [
			["GET", `${t.base}/products`],
			["GET", `${t.base}/products/${tea.id}`],
			["POST", `${t.base}/categories`, { name: "x", slug: slug("x") }],
			["GET", `${t.base}/orders`],
			["GET", `${t.base}/audit-logs`],
			["GET", t.base],
			["GET", `${t.base}/members`],
		] as const) {
			const r = await call<Problem>(method, path, { token: t.admin.token, body });
			expect(r.status, `${method} ${path}: ${r.text}`).toBe(404);
			// Only to a verified caller: without a valid credential it is a 401, as for any organization.
			for (const token of [undefined, "not-a-token"]) {
				expect((await call(method, path, { token, body })).status, `${method} ${path} as ${token}`).toBe(401);
			}
		}
		// The store is empty: no row in any of its tables, no audit head, no alarm.
		const stats = await storeOf(t.orgId).stats();
		expect(Object.values(stats.counts).every((n) => n === 0)).toBe(true);
		expect(stats).toMatchObject({ auditHead: null, organizationId: null, outboxPending: 0 });
		for (const table of ["categories", "products", "variants", "orders", "order_items", "audit_logs", "idempotency_keys", "mirror_access"]) {
			expect(await storeSql(t.orgId, `SELECT count(*) AS n FROM ${table}`), table).toEqual([{ n: 0 }]);
		}
		expect(await runInDurableObject(storeOf(t.orgId), (_o, state) => state.storage.getAlarm())).toBeNull();
		// Retired with the wipe: an isolate still holding the old route (cached for 10 min) writes nothing there.
		expect((await storeOf(t.orgId).stats()).state).toBe("retired");
		await env.DB.prepare("UPDATE organizations SET store_state = NULL WHERE id = ?").bind(t.orgId).run();
		forgetStoreRoute(t.orgId);
		expect((await storeRoute(env, t.orgId)).state).toBe("store"); // this isolate now holds a stale route
		await env.DB.prepare("UPDATE organizations SET store_state = 'deleted' WHERE id = ?").bind(t.orgId).run();
		const stale = await call<Problem>("POST", `${t.base}/categories`, { token: t.admin.token, body: { name: "x", slug: slug("x") } });
		expect(stale.status, stale.text).toBe(404);
		expect(await storeSql(t.orgId, "SELECT count(*) AS n FROM categories")).toEqual([{ n: 0 }]);
		// The tenant-events consumer with the stale route: the store refuses, so no audit entry lands in it.
		await env.DB.prepare("UPDATE organizations SET store_state = NULL WHERE id = ?").bind(t.orgId).run();
		forgetStoreRoute(t.orgId);
		await storeRoute(env, t.orgId);
		await env.DB.prepare("UPDATE organizations SET store_state = 'deleted' WHERE id = ?").bind(t.orgId).run();
		await deliverTenant([systemAudit({ organizationId: t.orgId, action: "member.updated" })]);
		expect(await storeSql(t.orgId, "SELECT count(*) AS n FROM audit_logs")).toEqual([{ n: 0 }]);
		// A tenant event still queued for it is dropped: written neither to the store nor to the shared tables.
		const late = await deliverTenant([systemAudit({ organizationId: t.orgId, action: "member.updated" })]);
		expect(late.explicitAcks).toHaveLength(1);
		expect(await storeSql(t.orgId, "SELECT count(*) AS n FROM audit_logs")).toEqual([{ n: 0 }]);
		expect(await env.DB.prepare("SELECT count(*) AS n FROM audit_logs WHERE organization_id = ?").bind(t.orgId).first()).toEqual({ n: 0 });
		// The directory row is kept, marked deleted; the operator still sees it; its export is gone.
		expect(await env.DB.prepare("SELECT store_state, deleted_at FROM organizations WHERE id = ?").bind(t.orgId).first()).toEqual({
			store_state: "deleted",
			deleted_at: res.json.deletedAt,
		});
		const org = await call<Body<"GET /api/admin/orgs/:orgId">>("GET", `/api/admin/orgs/${t.orgId}`, { token: operator });
		expect(org.json.deletedAt).toBe(res.json.deletedAt);
		const gone = await call<Problem>("GET", `/api/admin/orgs/${t.orgId}/export`, { token: operator });
		expect(gone.status).toBe(404);
		// Repeating it is harmless; an unknown organization is a 404.
		const again = await call<Body<"DELETE /api/admin/orgs/:orgId", 202>>("DELETE", `/api/admin/orgs/${t.orgId}`, { token: operator });
		expect(again.json.deletedAt).toBe(res.json.deletedAt);
		expect((await call("DELETE", "/api/admin/orgs/org_missing", { token: operator })).status).toBe(404);
	});
});

describe("DELETE /api/admin/orgs/:orgId against work under way", () => {
	it("a request still applying its events when the store is wiped finishes first: nothing of it is left in the wiped store", async () => {
		const t = await seedTenant({ plan: "pro" });
		const hook = await call<{ id: string }>("POST", `${t.base}/webhooks`, { token: t.admin.token, body: { url: "https://hooks.tenant.example.com/in", eventTypes: ["*"] } });
		expect(hook.status, hook.text).toBe(201);
		const { tea } = await useStore(t);
		// The order's event fans out to the endpoint; the fan-out's read of the plan (in D1) is held.
		const held = await holdStoreD1(t.orgId, (q) => q.startsWith("SELECT plan FROM organizations"));
		const order = call("POST", `${t.base}/orders`, { token: t.admin.token, body: { items: [{ productId: tea.id, quantity: 1 }], customerEmail: "buyer@example.com" } });
		await held.reached;
		const deleted = call("DELETE", `/api/admin/orgs/${t.orgId}`, { token: operator });
		// The wipe has begun (the store refuses new calls) and waits for the request; let the request go on.
		const state = await eventually(async () => (await storeOf(t.orgId).stats()).state, (v) => v === "retired");
		expect(state).toBe("retired");
		held.release();
		expect((await deleted).status).toBe(202);
		expect((await order).status).toBe(201);
		const left: Record<string, number> = {};
		for (const table of TenantStoreObject.DATA_TABLES) {
			const [r] = await storeSql<{ n: number }>(t.orgId, `SELECT count(*) AS n FROM ${table}`);
			if (r && r.n > 0) left[table] = r.n;
		}
		expect(left).toEqual({});
		expect(await runInDurableObject(storeOf(t.orgId), (_o, state) => state.storage.getAlarm())).toBeNull();
		expect((await storeOf(t.orgId).stats()).state).toBe("retired");
	});
});

describe("a store the runtime reports overloaded", () => {
	/** TENANT_STORE whose objects fail every call with `error` (as the runtime rejects a call to a busy object). */
	const failingStores = (error: Error) => ({
		idFromName: (name: string) => env.TENANT_STORE.idFromName(name),
		jurisdiction: () => failingStores(error),
		get: () => ({
			serve: async () => {
				throw error;
			},
		}),
	});

	it("answers 503 problem+json with Retry-After (sending it again at once would only queue more), other failures 500", async () => {
		const t = await seedTenant();
		const busy = Object.assign(new Error("Durable Object is overloaded. Too many requests queued."), { overloaded: true });
		const res = await callWithEnv<Problem>({ TENANT_STORE: failingStores(busy) }, "GET", `${t.base}/products`, { token: t.member.token });
		expect(res.status, res.text).toBe(503);
		expect(res.json).toMatchObject({ status: 503, code: "UPSTREAM_UNAVAILABLE" });
		expect(res.headers.get("retry-after")).toBe("1");
		const broken = await callWithEnv<Problem>({ TENANT_STORE: failingStores(new Error("something else")) }, "GET", `${t.base}/products`, {
			token: t.member.token,
		});
		expect(broken.status).toBe(500);
	});
});
