import { describe, expect, it, vi } from "vitest";
import { sha256Hex } from "../../src/lib/crypto";
import { SqlD1 } from "../../src/tenant-store/sql-d1";
import { uid } from "../helpers/factories";
import { type Body, call, get, type Problem, type TestResponse } from "../helpers/request";
import { storeSql } from "../helpers/store";
import { seedTenant, type Tenant } from "../helpers/tenant";

// Regression tests for issue 16 (items 1, 3, 4, 5, 10) and issue 20 (hidden rules, schema-valid 500s).

type Product = Body<"POST /api/orgs/:orgId/products">;
type Variant = Body<"POST /api/orgs/:orgId/products/:productId/variants">;
type Category = Body<"POST /api/orgs/:orgId/categories">;
type Order = Body<"POST /api/orgs/:orgId/orders">;
type ProductPage = Body<"GET /api/orgs/:orgId/products">;

/** Limits high enough that seeding through the API never meets the tenant's rate limit. */
const roomy = () => seedTenant({ limits: { rateLimitPerMinute: 10_000, userRateLimitPerMinute: 10_000 } });

async function createProduct(t: Tenant, over: Record<string, unknown> = {}): Promise<Product> {
	const res = await call<Product>("POST", `${t.base}/products`, {
		token: t.admin.token,
		body: { name: "Chai", sku: uid("SKU"), priceMinor: 25000, currency: "INR", status: "active", stock: 10, ...over },
	});
	expect(res.status, res.text).toBe(201);
	return res.json;
}

/**
 * Products inserted directly in the tenant's store, in one statement (fast bulk seeding, or rows older
 * than today's schema bounds).
 */
async function insertProducts(orgId: string, rows: { name?: string; priceMinor: number; stock: number }[]): Promise<string[]> {
	const now = Date.now();
	const seeded = rows.map((r, i) => ({ id: uid("prd"), name: r.name ?? `Item ${i}`, sku: uid("SKU"), price: r.priceMinor, stock: r.stock, at: now + i }));
	await storeSql(
		orgId,
		`INSERT INTO products (id, organization_id, name, sku, price_minor, currency, status, stock, version, created_at, updated_at)
		SELECT value ->> 'id', ?, value ->> 'name', value ->> 'sku', value ->> 'price', 'INR', 'active', value ->> 'stock', 1, value ->> 'at', value ->> 'at'
		FROM json_each(?)`,
		orgId,
		JSON.stringify(seeded),
	);
	return seeded.map((r) => r.id);
}

/** The statements of one store batch: SqlD1's own (their SQL is `query`). */
type StoreStatement = Parameters<SqlD1["batch"]>[0][number];
/**
 * The work's own batch in a tenant store: every change writes its outbox rows (audit entry, outgoing
 * event) in the batch that commits it (services/store/shared.ts commitBatch); reads and the audit
 * chain's own batches write none.
 */
const isWorkBatch = (statements: StoreStatement[]) => statements.some((st) => /^\s*insert\s+into\s+"?outbox"?\s/i.test(st.query));

/**
 * Runs `request` while the tenant stores' database batches go through `around` (the original batch as
 * `run`), then restores them: a crash or a race injected at the store's database, where the D1 binding
 * used to be replaced for one request.
 */
async function withStoreBatches<T>(
	around: (db: SqlD1, statements: StoreStatement[], run: () => Promise<D1Result[]>) => Promise<D1Result[]>,
	request: () => Promise<T>,
): Promise<T> {
	const batch = SqlD1.prototype.batch;
	const spy = vi.spyOn(SqlD1.prototype, "batch").mockImplementation(async function (this: SqlD1, statements) {
		return around(this, statements, () => batch.call(this, statements) as Promise<D1Result[]>) as never;
	});
	try {
		return await request();
	} finally {
		spy.mockRestore();
	}
}

const patch = <T>(t: Tenant, path: string, body: unknown) => call<T>("PATCH", `${t.base}${path}`, { token: t.admin.token, body });

describe("PATCH changes exactly the fields sent (issue 16 item 1)", () => {
	it("products: {name} keeps status, description, price, currency and category; {priceMinor} keeps archived", async () => {
		const t = await seedTenant();
		const cat = (await call<Category>("POST", `${t.base}/categories`, { token: t.admin.token, body: { name: "Tea", slug: "tea" } })).json;
		const p = await createProduct(t, { description: "Strong", priceMinor: 31000, currency: "USD", categoryId: cat.id });
		const renamed = await patch<Product>(t, `/products/${p.id}`, { name: "Renamed" });
		expect(renamed.status, renamed.text).toBe(200);
		expect(renamed.json).toEqual({ ...p, name: "Renamed", version: 2, updatedAt: renamed.json.updatedAt });

		const archived = await patch<Product>(t, `/products/${p.id}`, { status: "archived" });
		expect(archived.json.status).toBe("archived");
		const repriced = await patch<Product>(t, `/products/${p.id}`, { priceMinor: 100 });
		expect(repriced.status, repriced.text).toBe(200);
		expect(repriced.json).toMatchObject({ status: "archived", priceMinor: 100, name: "Renamed", description: "Strong", categoryId: cat.id });
		const stored = await storeSql(t.orgId, "SELECT status, description, price_minor AS p FROM products WHERE id = ?", p.id);
		expect(stored).toEqual([{ status: "archived", description: "Strong", p: 100 }]);
	});

	it("variants and categories: a one-field PATCH leaves the other fields alone", async () => {
		const t = await seedTenant();
		const p = await createProduct(t);
		const v = (
			await call<Variant>("POST", `${t.base}/products/${p.id}/variants`, {
				token: t.admin.token,
				body: { name: "500g", sku: uid("V"), priceMinor: 45000, stock: 5 },
			})
		).json;
		const vr = await patch<Variant>(t, `/products/${p.id}/variants/${v.id}`, { name: "1kg" });
		expect(vr.status, vr.text).toBe(200);
		expect(vr.json).toEqual({ ...v, name: "1kg", version: 2, updatedAt: vr.json.updatedAt });
		const c = (await call<Category>("POST", `${t.base}/categories`, { token: t.admin.token, body: { name: "Tea", slug: "tea-1" } })).json;
		const cr = await patch<Category>(t, `/categories/${c.id}`, { name: "Teas" });
		expect(cr.json).toEqual({ ...c, name: "Teas", version: 2, updatedAt: cr.json.updatedAt });
	});

	it("PATCH {} is refused (400) the same way on categories, products and variants, and the document says so", async () => {
		const t = await seedTenant();
		const p = await createProduct(t, { status: "active" });
		const v = (await call<Variant>("POST", `${t.base}/products/${p.id}/variants`, { token: t.admin.token, body: { name: "v", sku: uid("V") } })).json;
		const c = (await call<Category>("POST", `${t.base}/categories`, { token: t.admin.token, body: { name: "Tea", slug: "tea-2" } })).json;
		for (const path of [`/products/${p.id}`, `/products/${p.id}/variants/${v.id}`, `/categories/${c.id}`]) {
			const res = await patch<Problem>(t, path, {});
			expect(res.status, `${path}: ${res.text}`).toBe(400);
			expect(res.headers.get("content-type")).toBe("application/problem+json");
		}
		const after = await get<Product>(`${t.base}/products/${p.id}`, t.admin.token);
		expect(after.json).toMatchObject({ status: "active", version: 1 });

		const doc = (await get<OpenApiDoc>("/api/openapi.json")).json;
		for (const path of ["/products/{productId}", "/products/{productId}/variants/{variantId}", "/categories/{categoryId}"]) {
			const schema = resolve(doc, doc.paths[`/api/orgs/{orgId}${path}`]!.patch!.requestBody.content["application/json"]!.schema);
			expect(schema.minProperties, path).toBe(1);
			// No defaults in a PATCH body: a field that is not sent is not changed.
			for (const [name, prop] of Object.entries(schema.properties ?? {})) expect(prop, `${path} ${name}`).not.toHaveProperty("default");
		}
	});

	it("inventory delta 0 is a no-op: 200 with the current stock, no version bump", async () => {
		const t = await seedTenant();
		const p = await createProduct(t, { stock: 7 });
		const res = await call<Body<"POST /api/orgs/:orgId/products/:productId/inventory">>("POST", `${t.base}/products/${p.id}/inventory`, {
			token: t.admin.token,
			body: { delta: 0 },
		});
		expect(res.status, res.text).toBe(200);
		expect(res.json).toEqual({ productId: p.id, variantId: null, stock: 7 });
		expect((await get<Product>(`${t.base}/products/${p.id}`, t.admin.token)).json.version).toBe(1);
		const missing = await call<Problem>("POST", `${t.base}/products/prd_nope/inventory`, { token: t.admin.token, body: { delta: 0 } });
		expect(missing.status).toBe(404);
	});
});

interface SchemaObject {
	$ref?: string;
	minProperties?: number;
	properties?: Record<string, unknown>;
}
interface OpenApiDoc {
	paths: Record<string, Record<string, { requestBody: { content: Record<string, { schema: SchemaObject }> } }>>;
	components: { schemas: Record<string, SchemaObject> };
}
const resolve = (doc: OpenApiDoc, s: SchemaObject): SchemaObject =>
	s.$ref ? resolve(doc, doc.components.schemas[s.$ref.replace("#/components/schemas/", "")]!) : s;

describe("orders at the documented maximum (issue 16 items 3 and 5)", () => {
	it("50 distinct lines at the maximum unit price and quantity: 201, every line stored, exact total", async () => {
		const t = await roomy();
		const MAX_PRICE = 100_000_000_000;
		const ids = await insertProducts(
			t.orgId,
			Array.from({ length: 50 }, () => ({ priceMinor: MAX_PRICE, stock: 1000 })),
		);
		const res = await call<Order>("POST", `${t.base}/orders`, {
			token: t.admin.token,
			body: { items: ids.map((productId) => ({ productId, quantity: 1000 })) },
		});
		expect(res.status, res.text).toBe(201);
		expect(res.json.items).toHaveLength(50);
		expect(res.json.totalMinor).toBe(5_000_000_000_000_000);
		expect(Number.isSafeInteger(res.json.totalMinor)).toBe(true);
		const stock = await storeSql(t.orgId, "SELECT count(*) AS n, sum(stock) AS s FROM products WHERE organization_id = ?", t.orgId);
		expect(stock).toEqual([{ n: 50, s: 0 }]);
		const got = await get<Order>(`${t.base}/orders/${res.json.id}`, t.admin.token);
		expect(got.json.items).toHaveLength(50);
		expect(got.json.history).toHaveLength(1);
		// Cancelling puts all 50 lines back.
		const cancel = await call<Order>("POST", `${t.base}/orders/${res.json.id}/status`, { token: t.admin.token, body: { status: "cancelled" } });
		expect(cancel.status, cancel.text).toBe(200);
		const back = await storeSql(t.orgId, "SELECT min(stock) AS lo, max(stock) AS hi FROM products WHERE organization_id = ?", t.orgId);
		expect(back).toEqual([{ lo: 1000, hi: 1000 }]);
	});

	it("50 lines with variants: 201", async () => {
		const t = await roomy();
		const [pid] = await insertProducts(t.orgId, [{ priceMinor: 100, stock: 0 }]);
		const now = Date.now();
		const vids = Array.from({ length: 50 }, () => uid("var"));
		const variants = vids.map((id, i) => ({ id, name: `v${i}`, sku: uid("V"), price: i === 0 ? null : i }));
		await storeSql(
			t.orgId,
			`INSERT INTO variants (id, organization_id, product_id, name, sku, price_minor, stock, version, created_at, updated_at)
			SELECT value ->> 'id', ?, ?, value ->> 'name', value ->> 'sku', value ->> 'price', 3, 1, ?, ? FROM json_each(?)`,
			t.orgId,
			pid!,
			now,
			now,
			JSON.stringify(variants),
		);
		const res = await call<Order>("POST", `${t.base}/orders`, {
			token: t.admin.token,
			body: { items: vids.map((variantId) => ({ productId: pid!, variantId, quantity: 2 })) },
		});
		expect(res.status, res.text).toBe(201);
		expect(res.json.totalMinor).toBe(2 * 100 + 2 * ((49 * 50) / 2));
		const v = await storeSql(t.orgId, "SELECT count(*) AS n, min(stock) AS lo, max(stock) AS hi FROM variants WHERE organization_id = ?", t.orgId);
		expect(v).toEqual([{ n: 50, lo: 1, hi: 1 }]);
		const short = await call<Problem>("POST", `${t.base}/orders`, {
			token: t.admin.token,
			body: { items: vids.map((variantId) => ({ productId: pid!, variantId, quantity: 2 })) },
		});
		expect(short.status, short.text).toBe(409);
	});

	it("unit price and quantity are bounded so a total is always a safe integer; a larger total is a 400", async () => {
		const t = await roomy();
		const over = await call<Problem>("POST", `${t.base}/products`, {
			token: t.admin.token,
			body: { name: "Too dear", sku: uid("S"), priceMinor: 100_000_000_001, currency: "INR" },
		});
		expect(over.status, over.text).toBe(400);
		const doc = (await get<OpenApiDoc>("/api/openapi.json")).json;
		const create = resolve(doc, doc.paths["/api/orgs/{orgId}/products"]!.post!.requestBody.content["application/json"]!.schema);
		expect(create.properties?.priceMinor).toMatchObject({ maximum: 100_000_000_000 });

		// Rows priced before the bound: the total is computed exactly and refused above the documented maximum.
		const [legacy, cheap, huge] = await insertProducts(t.orgId, [
			{ priceMinor: 5_000_000_000_000, stock: 10_000 },
			{ priceMinor: 1, stock: 10_000 },
			{ priceMinor: Number.MAX_SAFE_INTEGER, stock: 10 },
		]);
		const atMax = await call<Order>("POST", `${t.base}/orders`, { token: t.admin.token, body: { items: [{ productId: legacy!, quantity: 1000 }] } });
		expect(atMax.status, atMax.text).toBe(201);
		expect(atMax.json.totalMinor).toBe(5_000_000_000_000_000);
		const oneMore = await call<Problem>("POST", `${t.base}/orders`, {
			token: t.admin.token,
			body: { items: [{ productId: legacy!, quantity: 1000 }, { productId: cheap!, quantity: 1 }] },
		});
		expect(oneMore.status, oneMore.text).toBe(400);
		expect(oneMore.headers.get("content-type")).toBe("application/problem+json");
		const rounded = await call<Problem>("POST", `${t.base}/orders`, { token: t.admin.token, body: { items: [{ productId: huge!, quantity: 1 }] } });
		expect(rounded.status, rounded.text).toBe(400);
		// Refused orders take no stock.
		const s = await storeSql(t.orgId, "SELECT stock FROM products WHERE id IN (?, ?) ORDER BY stock", cheap!, huge!);
		expect(s).toEqual([{ stock: 10 }, { stock: 10_000 }]);
	});
});

describe("product search (issue 16 item 4)", () => {
	it("q at its documented maximum and LIKE wildcards answer 200", async () => {
		const t = await seedTenant();
		const long = "x".repeat(100);
		const p = await createProduct(t, { name: `a${long}b` });
		for (const q of [long, "%".repeat(25), "_".repeat(100), "é".repeat(100), `"${"\\".repeat(60)}"`, "a", "%"]) {
			const res = await get<ProductPage>(`${t.base}/products?q=${encodeURIComponent(q)}`, t.admin.token);
			expect(res.status, `${q}: ${res.text}`).toBe(200);
			expect(res.json.data.map((x) => x.id)).toEqual(q === long || q === "a" ? [p.id] : []);
		}
		const tooLong = await get<Problem>(`${t.base}/products?q=${"x".repeat(101)}`, t.admin.token);
		expect(tooLong.status).toBe(400);
	});

	it("finds substrings case-insensitively, follows renames and deletes, pages by cursor, never another tenant's", async () => {
		const t = await seedTenant();
		const other = await seedTenant();
		const a = await createProduct(t, { name: "Darjeeling First Flush" });
		const b = await createProduct(t, { name: "Darjeeling Second Flush" });
		const c = await createProduct(t, { name: "Assam Breakfast" });
		await createProduct(other, { name: "Darjeeling Other Tenant" });
		const ids = async (q: string, extra = "") =>
			(await get<ProductPage>(`${t.base}/products?q=${encodeURIComponent(q)}${extra}`, t.admin.token)).json.data.map((x) => x.id);
		expect(await ids("jeeling")).toEqual([a.id, b.id]);
		expect(await ids("DARJ")).toEqual([a.id, b.id]);
		expect(await ids("ond fl")).toEqual([b.id]);
		expect(await ids("Fl")).toEqual([a.id, b.id]);
		expect(await ids("Other")).toEqual([]);
		// Keyset pagination over a search.
		const first = (await get<ProductPage>(`${t.base}/products?q=flush&limit=1`, t.admin.token)).json;
		expect(first.data.map((x) => x.id)).toEqual([a.id]);
		const second = (await get<ProductPage>(`${t.base}/products?q=flush&limit=1&cursor=${first.nextCursor}`, t.admin.token)).json;
		expect(second.data.map((x) => x.id)).toEqual([b.id]);
		expect(second.nextCursor).toBeNull();
		// Combined with another filter.
		expect(await ids("flush", `&sku=${b.sku}`)).toEqual([b.id]);
		// The index follows renames and deletes.
		await patch(t, `/products/${c.id}`, { name: "Nilgiri Frost" });
		expect(await ids("Breakfast")).toEqual([]);
		expect(await ids("giri fr")).toEqual([c.id]);
		expect((await call("DELETE", `${t.base}/products/${a.id}`, { token: t.admin.token })).status).toBe(204);
		expect(await ids("jeeling")).toEqual([b.id]);
	});
});

describe("Idempotency-Key after a crash (issue 16 item 10)", () => {
	const productBody = () => ({ name: "Crash", sku: uid("S"), priceMinor: 100, currency: "INR" });
	/** A pending claim as left by a request whose isolate died after claiming the key `ageMs` ago. */
	async function orphanClaim(t: Tenant, key: string, path: string, body: unknown, ageMs: number) {
		const hash = await sha256Hex(`POST ${path}\n${t.admin.id}\n${JSON.stringify(body)}`);
		await storeSql(
			t.orgId,
			"INSERT INTO idempotency_keys (organization_id, key, user_id, request_hash, state, created_at) VALUES (?, ?, ?, ?, 'pending', ?)",
			t.orgId,
			key,
			t.admin.id,
			hash,
			Date.now() - ageMs,
		);
	}

	it("a claim whose work never committed: once its lease expired, the retry runs the work (once)", async () => {
		const t = await seedTenant();
		const key = uid("key");
		const body = productBody();
		await orphanClaim(t, key, `${t.base}/products`, body, 60_000);
		const retry = await call<Product>("POST", `${t.base}/products`, { token: t.admin.token, headers: { "idempotency-key": key }, body });
		expect(retry.status, retry.text).toBe(201);
		const again = await call<Product>("POST", `${t.base}/products`, { token: t.admin.token, headers: { "idempotency-key": key }, body });
		expect(again.status).toBe(201);
		expect(again.headers.get("idempotent-replayed")).toBe("true");
		expect(again.json).toEqual(retry.json);
		const n = await storeSql(t.orgId, "SELECT count(*) AS n FROM products WHERE organization_id = ?", t.orgId);
		expect(n).toEqual([{ n: 1 }]);
	});

	it("a claim still within its lease is in progress (409); another body under an expired lease is still a 409", async () => {
		const t = await seedTenant();
		const key = uid("key");
		const body = productBody();
		await orphanClaim(t, key, `${t.base}/products`, body, 0);
		const busy = await call<Problem>("POST", `${t.base}/products`, { token: t.admin.token, headers: { "idempotency-key": key }, body });
		expect(busy.status).toBe(409);
		const key2 = uid("key");
		await orphanClaim(t, key2, `${t.base}/products`, body, 60_000);
		const other = await call<Problem>("POST", `${t.base}/products`, { token: t.admin.token, headers: { "idempotency-key": key2 }, body: productBody() });
		expect(other.status).toBe(409);
	});

	it("the work committed but the answer was lost: the retry gets the stored answer, the order exists once", async () => {
		const t = await seedTenant();
		const p = await createProduct(t, { stock: 5 });
		const key = uid("key");
		const body = { items: [{ productId: p.id, quantity: 2 }] };
		// The store's database commits the order's batch, then the request dies before it can answer.
		let crashed = false;
		const first = await withStoreBatches(
			async (_db, statements, run) => {
				const results = await run();
				if (!crashed && isWorkBatch(statements)) {
					crashed = true;
					throw new Error("isolate died after the commit");
				}
				return results;
			},
			() => call<Problem>("POST", `${t.base}/orders`, { token: t.admin.token, headers: { "idempotency-key": key }, body }),
		);
		expect(crashed).toBe(true);
		expect(first.status).toBe(500);
		const retry = await call<Order>("POST", `${t.base}/orders`, { token: t.admin.token, headers: { "idempotency-key": key }, body });
		expect(retry.status, retry.text).toBe(201);
		expect(retry.headers.get("idempotent-replayed")).toBe("true");
		const orders = await storeSql<{ id: string }>(t.orgId, "SELECT id FROM orders WHERE organization_id = ?", t.orgId);
		expect(orders.map((o) => o.id)).toEqual([retry.json.id]);
		expect(retry.json.items).toHaveLength(1);
		expect((await get<Product>(`${t.base}/products/${p.id}`, t.admin.token)).json.stock).toBe(3);
		// The replay is the answer the request would have given.
		const read = await get<Order>(`${t.base}/orders/${retry.json.id}`, t.admin.token);
		expect(retry.json).toEqual(read.json);
	});

	it("an inventory adjustment whose answer was lost is not applied twice", async () => {
		const t = await seedTenant();
		const p = await createProduct(t, { stock: 5 });
		const key = uid("key");
		// The store's database commits the first write to products, then the request dies before it can answer:
		// the work's batch, or a single statement after the claim (it counts as the work too).
		let crashed = false;
		const writesProducts = (query: string) => /^\s*update\s+"?products"?\s/i.test(query);
		const prepare = SqlD1.prototype.prepare;
		const single = vi.spyOn(SqlD1.prototype, "prepare").mockImplementation(function (this: SqlD1, query: string) {
			const stmt = prepare.call(this, query);
			if (crashed || !writesProducts(query)) return stmt;
			const handler: ProxyHandler<object> = {
				get(target, k) {
					const v: unknown = Reflect.get(target, k);
					if (typeof v !== "function") return v;
					const f = (v as (...a: unknown[]) => unknown).bind(target);
					if (k === "bind") return (...a: unknown[]) => new Proxy(f(...a) as object, handler);
					if (k === "all" || k === "run" || k === "raw" || k === "first") {
						return async (...a: unknown[]) => {
							await f(...a);
							crashed = true;
							throw new Error("isolate died after the commit");
						};
					}
					return f;
				},
			};
			return new Proxy(stmt, handler) as typeof stmt;
		});
		let first: TestResponse<Problem>;
		try {
			first = await withStoreBatches(
				async (_db, statements, run) => {
					const results = await run();
					if (!crashed && statements.some((st) => writesProducts(st.query))) {
						crashed = true;
						throw new Error("isolate died after the commit");
					}
					return results;
				},
				() =>
					call<Problem>("POST", `${t.base}/products/${p.id}/inventory`, {
						token: t.admin.token,
						headers: { "idempotency-key": key },
						body: { delta: -2 },
					}),
			);
		} finally {
			single.mockRestore();
		}
		expect(crashed).toBe(true);
		expect(first.status).toBe(500);
		const retry = await call<Body<"POST /api/orgs/:orgId/products/:productId/inventory">>("POST", `${t.base}/products/${p.id}/inventory`, {
			token: t.admin.token,
			headers: { "idempotency-key": key },
			body: { delta: -2 },
		});
		expect(retry.status, retry.text).toBe(200);
		expect(retry.json).toEqual({ productId: p.id, variantId: null, stock: 3 });
		expect((await get<Product>(`${t.base}/products/${p.id}`, t.admin.token)).json.stock).toBe(3);
	});

	it("a request that lost its claim to a retry (lease expired mid-flight) commits nothing: 409", async () => {
		const t = await seedTenant();
		const key = uid("key");
		// Just before the work's batch runs, a retry takes the expired claim over (a new token).
		let takenOver = false;
		const res = await withStoreBatches(
			async (db, statements, run) => {
				if (!takenOver && isWorkBatch(statements)) {
					takenOver = true;
					db.sql.exec("UPDATE idempotency_keys SET claim_token = 'the-retry' WHERE organization_id = ? AND key = ?", t.orgId, key);
				}
				return run();
			},
			() =>
				call<Problem>("POST", `${t.base}/products`, {
					token: t.admin.token,
					headers: { "idempotency-key": key },
					body: productBody(),
				}),
		);
		expect(takenOver).toBe(true);
		expect(res.status, res.text).toBe(409);
		const n = await storeSql(t.orgId, "SELECT count(*) AS n FROM products WHERE organization_id = ?", t.orgId);
		expect(n).toEqual([{ n: 0 }]);
		// The retry's claim is untouched.
		const row = await storeSql(t.orgId, "SELECT state, claim_token AS token FROM idempotency_keys WHERE organization_id = ? AND key = ?", t.orgId, key);
		expect(row).toEqual([{ state: "pending", token: "the-retry" }]);
	});

	it("an order transition whose answer was lost: the retry gets the stored answer, not a 409", async () => {
		const t = await seedTenant();
		const p = await createProduct(t, { stock: 5 });
		const order = (await call<Order>("POST", `${t.base}/orders`, { token: t.admin.token, body: { items: [{ productId: p.id, quantity: 2 }] } })).json;
		const key = uid("key");
		// The transition reads the order (a batch of reads), then commits its own batch and dies before answering.
		const batches: ("read" | "work")[] = [];
		const path = `${t.base}/orders/${order.id}/status`;
		const body = { status: "cancelled", note: "changed my mind" };
		const first = await withStoreBatches(
			async (_db, statements, run) => {
				const results = await run();
				if (statements.some((st) => /order_status_history|\borders\b/i.test(st.query))) {
					batches.push(isWorkBatch(statements) ? "work" : "read");
					if (batches.length === 2) throw new Error("isolate died after the commit");
				}
				return results;
			},
			() => call<Problem>("POST", path, { token: t.admin.token, headers: { "idempotency-key": key }, body }),
		);
		expect(batches).toEqual(["read", "work"]);
		expect(first.status).toBe(500);
		const retry = await call<Order>("POST", path, { token: t.admin.token, headers: { "idempotency-key": key }, body });
		expect(retry.status, retry.text).toBe(200);
		expect(retry.headers.get("idempotent-replayed")).toBe("true");
		expect(retry.json).toEqual((await get<Order>(`${t.base}/orders/${order.id}`, t.admin.token)).json);
		expect(retry.json.history.map((h) => h.toStatus)).toEqual(["pending", "cancelled"]);
		expect((await get<Product>(`${t.base}/products/${p.id}`, t.admin.token)).json.stock).toBe(5);
	});
});

describe("found by review on 7 Dec 2026: audit entries, versions and replays stay true to what happened", () => {
	const auditActions = async (t: Tenant, action: string) =>
		(await get<{ data: { target: { id: string | null } }[] }>(`${t.base}/audit-logs?action=${action}`, t.admin.token)).json.data.map((e) => e.target.id);

	it("a PATCH that matches no row (404) writes no `*.updated` audit entry, with or without If-Match", async () => {
		const t = await roomy();
		const p = await createProduct(t);
		const v = (await call<Variant>("POST", `${t.base}/products/${p.id}/variants`, { token: t.admin.token, body: { name: "V", sku: uid("VS") } })).json;
		const other = await createProduct(t);
		for (const [path, body] of [
			[`${t.base}/categories/cat_missing`, { name: "ghost" }],
			[`${t.base}/products/prd_missing`, { name: "ghost" }],
			[`${t.base}/products/${other.id}/variants/${v.id}`, { name: "moved" }], // a real variant, under another product
		] as const) {
			for (const headers of [undefined, { "if-match": '"1"' }]) {
				const res = await call<Problem>("PATCH", path, { token: t.admin.token, body, headers });
				expect(res.status, `${path} ${res.text}`).toBe(404);
			}
		}
		expect(await auditActions(t, "category.updated")).toEqual([]);
		expect(await auditActions(t, "product.updated")).toEqual([]);
		expect(await auditActions(t, "variant.updated")).toEqual([]);
		// A PATCH that applies still writes its entry.
		expect((await call("PATCH", `${t.base}/products/${p.id}/variants/${v.id}`, { token: t.admin.token, body: { name: "W" } })).status).toBe(200);
		expect(await auditActions(t, "variant.updated")).toEqual([v.id]);
	});

	it("a change that touches a row moves its version (ETag): a cancelled order's restock, a deleted category's products", async () => {
		const t = await roomy();
		const cat = (await call<Category>("POST", `${t.base}/categories`, { token: t.admin.token, body: { name: "C", slug: "cat-a" } })).json;
		const p = await createProduct(t, { stock: 5, categoryId: cat.id });
		const order = await call<Order>("POST", `${t.base}/orders`, { token: t.admin.token, body: { items: [{ productId: p.id, quantity: 2 }] } });
		expect(order.status, order.text).toBe(201);
		const taken = await get<Product>(`${t.base}/products/${p.id}`, t.admin.token);
		expect(taken.json).toMatchObject({ stock: 3 });
		const cancel = await call("POST", `${t.base}/orders/${order.json.id}/status`, { token: t.admin.token, body: { status: "cancelled" } });
		expect(cancel.status, cancel.text).toBe(200);
		const restocked = await get<Product>(`${t.base}/products/${p.id}`, t.admin.token);
		expect(restocked.json.stock).toBe(5);
		expect(restocked.json.version).toBe(taken.json.version + 1);
		expect(restocked.headers.get("etag")).toBe(`"${taken.json.version + 1}"`);

		expect((await call("DELETE", `${t.base}/categories/${cat.id}`, { token: t.admin.token })).status).toBe(204);
		const uncategorized = await get<Product>(`${t.base}/products/${p.id}`, t.admin.token);
		expect(uncategorized.json).toMatchObject({ categoryId: null, version: restocked.json.version + 1 });
		// A write made with the ETag read before the category went is refused.
		const stale = await call("PATCH", `${t.base}/products/${p.id}`, { token: t.admin.token, body: { name: "X" }, headers: { "if-match": `"${restocked.json.version}"` } });
		expect(stale.status, stale.text).toBe(412);
	});

	it("an Idempotency-Key replay carries the first answer's ETag; an empty categoryId or variantId is a 400", async () => {
		const t = await roomy();
		const body = { name: "C", slug: "cat-a" };
		const first = await call<Category>("POST", `${t.base}/categories`, { token: t.admin.token, body, headers: { "idempotency-key": uid("k") } });
		const key = uid("k");
		const a = await call<Category>("POST", `${t.base}/categories`, { token: t.admin.token, body: { ...body, slug: `${body.slug}-2` }, headers: { "idempotency-key": key } });
		const b = await call<Category>("POST", `${t.base}/categories`, { token: t.admin.token, body: { ...body, slug: `${body.slug}-2` }, headers: { "idempotency-key": key } });
		expect([first.status, a.status, b.status]).toEqual([201, 201, 201]);
		expect(b.headers.get("idempotent-replayed")).toBe("true");
		expect(b.json).toEqual(a.json);
		expect(b.headers.get("etag")).toBe(a.headers.get("etag"));
		expect(b.headers.get("etag")).toBe('"1"');

		const p = await createProduct(t);
		const emptyCategory = await call<Problem>("POST", `${t.base}/products`, {
			token: t.admin.token,
			body: { name: "E", sku: uid("SKU"), priceMinor: 1, currency: "INR", categoryId: "" },
		});
		expect(emptyCategory.status, emptyCategory.text).toBe(400);
		expect(emptyCategory.json.errors?.[0]?.path).toBe("categoryId");
		expect((await call("PATCH", `${t.base}/products/${p.id}`, { token: t.admin.token, body: { categoryId: "" } })).status).toBe(400);
		const emptyVariant = await call<Problem>("POST", `${t.base}/products/${p.id}/inventory`, { token: t.admin.token, body: { delta: 1, variantId: "" } });
		expect(emptyVariant.status, emptyVariant.text).toBe(400);
	});
});

describe("a lone surrogate in a JSON body (not Unicode text) is stored and answered as U+FFFD", () => {
	it("the 201's echo, a later GET and the audit entry agree", async () => {
		const t = await roomy();
		// `"\ud800"` is valid JSON but no Unicode character: UTF-8 storage can only keep it as U+FFFD.
		const raw = `{"name":"Tea \\ud800 leaves","sku":"${uid("SKU")}","priceMinor":100,"currency":"INR","description":"a\\udfffb"}`;
		const created = await call<Product>("POST", `${t.base}/products`, { token: t.admin.token, body: raw });
		expect(created.status, created.text).toBe(201);
		expect(created.json).toMatchObject({ name: "Tea \ufffd leaves", description: "a\ufffdb" });
		const read = await get<Product>(`${t.base}/products/${created.json.id}`, t.admin.token);
		expect(read.json).toEqual(created.json);
		const audit = await get<{ data: { after: unknown }[] }>(`${t.base}/audit-logs?action=product.created`, t.admin.token);
		expect(audit.json.data[0]?.after).toMatchObject({ name: "Tea \ufffd leaves", description: "a\ufffdb" });
		// A well-formed pair (an emoji) is kept as it is.
		const emoji = await call<Product>("POST", `${t.base}/products`, {
			token: t.admin.token,
			body: `{"name":"Tea \\ud83c\\udf75","sku":"${uid("SKU")}","priceMinor":100,"currency":"INR"}`,
		});
		expect(emoji.json.name).toBe("Tea 🍵");
	});
});
