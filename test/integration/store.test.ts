import { describe, expect, it } from "vitest";
import { uid } from "../helpers/factories";
import { type Body, call, type Problem } from "../helpers/request";
import { storeSql } from "../helpers/store";
import { seedTenant, type Tenant } from "../helpers/tenant";

type Product = Body<"POST /api/orgs/:orgId/products">;

/** Creates a product through the API as the tenant's admin (active, 10 in stock unless `over` says otherwise). */
async function createProduct(t: Tenant, over: Record<string, unknown> = {}): Promise<Product> {
	const res = await call<Product>("POST", `${t.base}/products`, {
		token: t.admin.token,
		body: { name: "Chai", sku: uid("SKU"), priceMinor: 25000, currency: "INR", status: "active", stock: 10, ...over },
	});
	expect(res.status, res.text).toBe(201);
	return res.json;
}

describe("products", () => {
	it("create, read with ETag, list with filters and cursor", async () => {
		const s = await seedTenant();
		const p = await createProduct(s, { name: "Masala Chai" });
		expect(p).toMatchObject({ name: "Masala Chai", priceMinor: 25000, currency: "INR", status: "active", stock: 10, version: 1 });
		expect(p).not.toHaveProperty("organizationId");
		const got = await call<Body<"GET /api/orgs/:orgId/products/:productId">>("GET", `${s.base}/products/${p.id}`, { token: s.member.token });
		expect(got.status).toBe(200);
		expect(got.headers.get("etag")).toBe('"1"');
		for (let i = 0; i < 4; i++) await createProduct(s, { name: `Draft ${i}`, status: "draft" });
		const drafts = await call<Body<"GET /api/orgs/:orgId/products">>("GET", `${s.base}/products?status=draft&limit=3`, { token: s.member.token });
		expect(drafts.json.data).toHaveLength(3);
		const rest = await call<Body<"GET /api/orgs/:orgId/products">>("GET", `${s.base}/products?status=draft&limit=3&cursor=${drafts.json.nextCursor}`, {
			token: s.member.token,
		});
		expect(rest.json.data).toHaveLength(1);
		expect(rest.json.nextCursor).toBeNull();
		const search = await call<Body<"GET /api/orgs/:orgId/products">>("GET", `${s.base}/products?q=Masala`, { token: s.member.token });
		expect(search.json.data.map((x: { id: string }) => x.id)).toEqual([p.id]);
		// LIKE wildcards in the search text are literal.
		const pct = await createProduct(s, { name: "100% Assam" });
		await createProduct(s, { name: "1000 Assam" });
		const literal = await call<Body<"GET /api/orgs/:orgId/products">>("GET", `${s.base}/products?q=${encodeURIComponent("100%")}`, { token: s.member.token });
		expect(literal.json.data.map((x: { id: string }) => x.id)).toEqual([pct.id]);
	});

	it("sku is unique per tenant (409), but the same sku is fine in another tenant", async () => {
		const s = await seedTenant();
		const p = await createProduct(s, { sku: "TEA-1" });
		const dup = await call<Body<"POST /api/orgs/:orgId/products">>("POST", `${s.base}/products`, {
			token: s.admin.token,
			body: { name: "Other", sku: "TEA-1", priceMinor: 1, currency: "INR" },
		});
		expect(dup.status, dup.text).toBe(409);
		const other = await seedTenant();
		const same = await createProduct(other, { sku: p.sku });
		expect(same.sku).toBe("TEA-1");
	});

	describe.each([
		["unknown field organizationId", { organizationId: "org_evil" }, "organizationId"],
		["unknown field id", { id: "prd_mine" }, "id"],
		["unknown field createdAt", { createdAt: 1 }, "createdAt"],
		["negative price", { priceMinor: -1 }, "priceMinor"],
		["fractional price", { priceMinor: 1.5 }, "priceMinor"],
		["bad currency", { currency: "rupees" }, "currency"],
		["unknown currency", { currency: "ZZZ" }, "currency"],
		["bad status", { status: "live" }, "status"],
		["empty name", { name: "" }, "name"],
		["bad sku", { sku: "has space" }, "sku"],
	])("validation: %s", (_n, over, field) => {
		it("is a 400 problem naming the field, and nothing is stored", async () => {
			const s = await seedTenant();
			const res = await call<Problem>("POST", `${s.base}/products`, {
				token: s.admin.token,
				body: { name: "X", sku: uid("S"), priceMinor: 100, currency: "INR", ...over },
			});
			expect(res.status, res.text).toBe(400);
			expect(res.headers.get("content-type")).toBe("application/problem+json");
			expect(res.json.errors).toEqual(expect.arrayContaining([expect.objectContaining({ path: field })]));
			const count = await storeSql(s.orgId, "SELECT count(*) AS n FROM products");
			expect(count).toEqual([{ n: 0 }]);
		});
	});

	it("If-Match: a stale ETag is a 412; the current one updates and bumps the version", async () => {
		const s = await seedTenant();
		const p = await createProduct(s);
		const first = await call<Body<"PATCH /api/orgs/:orgId/products/:productId">>("PATCH", `${s.base}/products/${p.id}`, {
			token: s.admin.token,
			headers: { "if-match": '"1"' },
			body: { name: "Renamed" },
		});
		expect(first.status, first.text).toBe(200);
		expect(first.headers.get("etag")).toBe('"2"');
		const stale = await call<Body<"PATCH /api/orgs/:orgId/products/:productId">>("PATCH", `${s.base}/products/${p.id}`, {
			token: s.admin.token,
			headers: { "if-match": '"1"' },
			body: { name: "Lost update" },
		});
		expect(stale.status, stale.text).toBe(412);
		const garbage = await call<Body<"PATCH /api/orgs/:orgId/products/:productId">>("PATCH", `${s.base}/products/${p.id}`, {
			token: s.admin.token,
			headers: { "if-match": "nonsense" },
			body: { name: "x" },
		});
		expect(garbage.status).toBe(412);
		// A list of entity tags (RFC 9110): the write applies while the row is at any of them.
		const staleList = await call("PATCH", `${s.base}/products/${p.id}`, { token: s.admin.token, headers: { "if-match": '"1", "5"' }, body: { name: "x" } });
		expect(staleList.status, staleList.text).toBe(412);
		const listed = await call<Body<"PATCH /api/orgs/:orgId/products/:productId">>("PATCH", `${s.base}/products/${p.id}`, {
			token: s.admin.token,
			headers: { "if-match": '"1", W/"2"' },
			body: { name: "Renamed" },
		});
		expect(listed.status, listed.text).toBe(200);
		expect(listed.headers.get("etag")).toBe('"3"');
		expect((await call<Body<"GET /api/orgs/:orgId/products/:productId">>("GET", `${s.base}/products/${p.id}`, { token: s.admin.token })).json.name).toBe("Renamed");
		const del = await call("DELETE", `${s.base}/products/${p.id}`, { token: s.admin.token, headers: { "if-match": '"1", "2"' } });
		expect(del.status).toBe(412);
		expect((await call("DELETE", `${s.base}/products/${p.id}`, { token: s.admin.token, headers: { "if-match": '"2", "3"' } })).status).toBe(
			204,
		);
		expect((await call<Body<"GET /api/orgs/:orgId/products/:productId">>("GET", `${s.base}/products/${p.id}`, { token: s.admin.token })).status).toBe(404);
	});

	it("inventory adjusts atomically and never below zero", async () => {
		const s = await seedTenant();
		const p = await createProduct(s, { stock: 3 });
		const down = await call<Body<"POST /api/orgs/:orgId/products/:productId/inventory">>("POST", `${s.base}/products/${p.id}/inventory`, { token: s.admin.token, body: { delta: -2 } });
		expect(down.json).toEqual({ productId: p.id, variantId: null, stock: 1 });
		const tooMuch = await call<Body<"POST /api/orgs/:orgId/products/:productId/inventory">>("POST", `${s.base}/products/${p.id}/inventory`, { token: s.admin.token, body: { delta: -2 } });
		expect(tooMuch.status, tooMuch.text).toBe(409);
		expect((await call<Body<"GET /api/orgs/:orgId/products/:productId">>("GET", `${s.base}/products/${p.id}`, { token: s.admin.token })).json.stock).toBe(1);
	});

	it("categories and variants", async () => {
		const s = await seedTenant();
		const cat = await call<Body<"POST /api/orgs/:orgId/categories">>("POST", `${s.base}/categories`, { token: s.admin.token, body: { name: "Tea", slug: "tea" } });
		expect(cat.status, cat.text).toBe(201);
		const p = await createProduct(s, { categoryId: cat.json.id });
		expect(p.categoryId).toBe(cat.json.id);
		const badCat = await call<Body<"POST /api/orgs/:orgId/products">>("POST", `${s.base}/products`, {
			token: s.admin.token,
			body: { name: "X", sku: uid("S"), priceMinor: 1, currency: "INR", categoryId: "cat_nope" },
		});
		expect(badCat.status).toBe(400);
		const v = await call<Body<"POST /api/orgs/:orgId/products/:productId/variants">>("POST", `${s.base}/products/${p.id}/variants`, {
			token: s.admin.token,
			body: { name: "500g", sku: uid("V"), priceMinor: 45000, stock: 5 },
		});
		expect(v.status, v.text).toBe(201);
		const list = await call<Body<"GET /api/orgs/:orgId/products/:productId/variants">>("GET", `${s.base}/products/${p.id}/variants`, { token: s.member.token });
		expect(list.json.data).toHaveLength(1);
		// The created variant's Location answers GET, with the ETag a PATCH's If-Match needs; under another product it is not found.
		const location = v.headers.get("location")!;
		expect(location).toBe(`${s.base}/products/${p.id}/variants/${v.json.id}`);
		const one = await call<Body<"GET /api/orgs/:orgId/products/:productId/variants/:variantId">>("GET", location, { token: s.member.token });
		expect(one.status, one.text).toBe(200);
		expect(one.json).toEqual(v.json);
		expect(one.headers.get("etag")).toBe(v.headers.get("etag"));
		const other = await createProduct(s);
		expect((await call("GET", `${s.base}/products/${other.id}/variants/${v.json.id}`, { token: s.member.token })).status).toBe(404);
		expect((await call("DELETE", `${s.base}/categories/${cat.json.id}`, { token: s.admin.token })).status).toBe(204);
		expect((await call<Body<"GET /api/orgs/:orgId/products/:productId">>("GET", `${s.base}/products/${p.id}`, { token: s.admin.token })).json.categoryId).toBeNull();
	});
});

describe("Idempotency-Key", () => {
	it("same key and body: same answer, no second row; same key, other body: 409", async () => {
		const s = await seedTenant();
		const body = { name: "Idem", sku: uid("IDEM"), priceMinor: 100, currency: "INR" };
		const headers = { "idempotency-key": uid("key") };
		const first = await call<Body<"POST /api/orgs/:orgId/products">>("POST", `${s.base}/products`, { token: s.admin.token, headers, body });
		expect(first.status).toBe(201);
		const second = await call<Body<"POST /api/orgs/:orgId/products">>("POST", `${s.base}/products`, { token: s.admin.token, headers, body });
		expect(second.status).toBe(201);
		expect(second.json).toEqual(first.json);
		expect(second.headers.get("idempotent-replayed")).toBe("true");
		const rows = await storeSql(s.orgId, "SELECT count(*) AS n FROM products WHERE organization_id = ?", s.orgId);
		expect(rows).toEqual([{ n: 1 }]);
		const other = await call<Body<"POST /api/orgs/:orgId/products">>("POST", `${s.base}/products`, { token: s.admin.token, headers, body: { ...body, name: "Different" } });
		expect(other.status, other.text).toBe(409);
	});

	it("a key older than 24 h is free again for a different request", async () => {
		const s = await seedTenant();
		const key = uid("key");
		const first = await call<Body<"POST /api/orgs/:orgId/products">>("POST", `${s.base}/products`, {
			token: s.admin.token,
			headers: { "idempotency-key": key },
			body: { name: "Old", sku: uid("S"), priceMinor: 1, currency: "INR" },
		});
		expect(first.status).toBe(201);
		const reuse = { name: "New", sku: uid("S"), priceMinor: 2, currency: "INR" };
		expect((await call<Body<"POST /api/orgs/:orgId/products">>("POST", `${s.base}/products`, { token: s.admin.token, headers: { "idempotency-key": key }, body: reuse })).status).toBe(409);
		await storeSql(s.orgId, "UPDATE idempotency_keys SET created_at = created_at - 86400001 WHERE organization_id = ? AND key = ?", s.orgId, key);
		const again = await call<Body<"POST /api/orgs/:orgId/products">>("POST", `${s.base}/products`, { token: s.admin.token, headers: { "idempotency-key": key }, body: reuse });
		expect(again.status, again.text).toBe(201);
		expect(again.json.name).toBe("New");
		expect(again.headers.get("idempotent-replayed")).toBeNull();
	});

	it("a failed request releases the key; keys are per organization", async () => {
		const s = await seedTenant();
		const key = uid("key");
		const bad = await call<Body<"POST /api/orgs/:orgId/products">>("POST", `${s.base}/products`, {
			token: s.admin.token,
			headers: { "idempotency-key": key },
			body: { name: "" },
		});
		expect(bad.status).toBe(400);
		const good = await call<Body<"POST /api/orgs/:orgId/products">>("POST", `${s.base}/products`, {
			token: s.admin.token,
			headers: { "idempotency-key": key },
			body: { name: "Now valid", sku: uid("S"), priceMinor: 1, currency: "INR" },
		});
		expect(good.status, good.text).toBe(201);
		const t2 = await seedTenant();
		const elsewhere = await call<Body<"POST /api/orgs/:orgId/products">>("POST", `${t2.base}/products`, {
			token: t2.admin.token,
			headers: { "idempotency-key": key },
			body: { name: "Now valid", sku: uid("S"), priceMinor: 1, currency: "INR" },
		});
		expect(elsewhere.status).toBe(201);
		expect(elsewhere.json.id).not.toBe(good.json.id);
	});
});

describe("orders", () => {
	it("items copy name, sku and price at order time; stock is taken; history is kept", async () => {
		const s = await seedTenant();
		const tea = await createProduct(s, { name: "Tea", priceMinor: 20000, stock: 5 });
		const cup = await createProduct(s, { name: "Cup", priceMinor: 15000, stock: 2 });
		const v = (
			await call<Body<"POST /api/orgs/:orgId/products/:productId/variants">>("POST", `${s.base}/products/${tea.id}/variants`, {
				token: s.admin.token,
				body: { name: "1kg", sku: uid("V"), priceMinor: 70000, stock: 1 },
			})
		).json;
		const created = await call<Body<"POST /api/orgs/:orgId/orders">>("POST", `${s.base}/orders`, {
			token: s.admin.token,
			body: {
				items: [
					{ productId: tea.id, quantity: 2 },
					{ productId: cup.id, quantity: 1 },
					{ productId: tea.id, variantId: v.id, quantity: 1 },
				],
				customerEmail: "buyer@example.com",
			},
		});
		expect(created.status, created.text).toBe(201);
		const order = created.json;
		expect(order).toMatchObject({ status: "pending", currency: "INR", totalMinor: 2 * 20000 + 15000 + 70000 });
		expect(order.items).toEqual(
			expect.arrayContaining([
				expect.objectContaining({ name: "Tea", sku: tea.sku, unitPriceMinor: 20000, quantity: 2, lineTotalMinor: 40000 }),
				expect.objectContaining({ name: "Tea (1kg)", unitPriceMinor: 70000, variantId: v.id }),
			]),
		);
		// A later price change does not touch the order.
		await call<Body<"PATCH /api/orgs/:orgId/products/:productId">>("PATCH", `${s.base}/products/${tea.id}`, { token: s.admin.token, body: { priceMinor: 99999, name: "Tea v2" } });
		const again = await call<Body<"GET /api/orgs/:orgId/orders/:orderId">>("GET", `${s.base}/orders/${order.id}`, { token: s.member.token });
		expect(again.json.items.find((i: { sku: string }) => i.sku === tea.sku)).toMatchObject({
			name: "Tea",
			unitPriceMinor: 20000,
		});
		expect((await call<Body<"GET /api/orgs/:orgId/products/:productId">>("GET", `${s.base}/products/${tea.id}`, { token: s.admin.token })).json.stock).toBe(3);

		const short = await call<Body<"POST /api/orgs/:orgId/orders">>("POST", `${s.base}/orders`, {
			token: s.admin.token,
			body: { items: [{ productId: cup.id, quantity: 2 }] },
		});
		expect(short.status, short.text).toBe(409);
		expect((await call<Body<"GET /api/orgs/:orgId/products/:productId">>("GET", `${s.base}/products/${cup.id}`, { token: s.admin.token })).json.stock).toBe(1);

		const paid = await call<Body<"POST /api/orgs/:orgId/orders/:orderId/status">>("POST", `${s.base}/orders/${order.id}/status`, {
			token: s.admin.token,
			body: { status: "paid" },
			headers: { "if-match": '"1"' },
		});
		expect(paid.status, paid.text).toBe(200);
		const bad = await call<Body<"POST /api/orgs/:orgId/orders/:orderId/status">>("POST", `${s.base}/orders/${order.id}/status`, { token: s.admin.token, body: { status: "pending" } });
		expect(bad.status).toBe(409);
		const cancel = await call<Body<"POST /api/orgs/:orgId/orders/:orderId/status">>("POST", `${s.base}/orders/${order.id}/status`, {
			token: s.admin.token,
			body: { status: "cancelled", note: "customer asked" },
		});
		expect(cancel.json.history.map((h: { toStatus: string }) => h.toStatus)).toEqual(["pending", "paid", "cancelled"]);
		expect((await call<Body<"GET /api/orgs/:orgId/products/:productId">>("GET", `${s.base}/products/${tea.id}`, { token: s.admin.token })).json.stock).toBe(5);
	});

	it("concurrent transitions of one order: exactly one wins", async () => {
		const s = await seedTenant();
		const p = await createProduct(s, { stock: 50 });
		// Several orders, many racers each: a loser must leave no trace (no history row, no restock).
		for (let round = 0; round < 4; round++) {
			const order = (await call<Body<"POST /api/orgs/:orgId/orders">>("POST", `${s.base}/orders`, { token: s.admin.token, body: { items: [{ productId: p.id, quantity: 1 }] } })).json;
			const results = await Promise.all(
				Array.from({ length: 8 }, () => call<Body<"POST /api/orgs/:orgId/orders/:orderId/status">>("POST", `${s.base}/orders/${order.id}/status`, { token: s.admin.token, body: { status: "paid" } })),
			);
			expect(results.filter((r) => r.status === 200)).toHaveLength(1);
			expect(results.filter((r) => r.status === 409)).toHaveLength(7);
			const final = (await call<Body<"GET /api/orgs/:orgId/orders/:orderId">>("GET", `${s.base}/orders/${order.id}`, { token: s.admin.token })).json;
			expect(final.history.map((h: { toStatus: string }) => h.toStatus)).toEqual(["pending", "paid"]);
			expect(final.version).toBe(2);
		}
		// Mixed concurrent moves: whatever wins, the history is one unbroken chain and stock is consistent.
		const o2 = (await call<Body<"POST /api/orgs/:orgId/orders">>("POST", `${s.base}/orders`, { token: s.admin.token, body: { items: [{ productId: p.id, quantity: 2 }] } }))
			.json;
		const mixed = await Promise.all(
			["cancelled", "paid", "cancelled", "paid"].map((status) =>
				call<Body<"POST /api/orgs/:orgId/orders/:orderId/status">>("POST", `${s.base}/orders/${o2.id}/status`, { token: s.admin.token, body: { status } }),
			),
		);
		const h = (await call<Body<"GET /api/orgs/:orgId/orders/:orderId">>("GET", `${s.base}/orders/${o2.id}`, { token: s.admin.token })).json.history as {
			fromStatus: string | null;
			toStatus: string;
		}[];
		expect(h).toHaveLength(1 + mixed.filter((r) => r.status === 200).length);
		for (const [i, e] of h.slice(1).entries()) expect(e.fromStatus).toBe(h[i]!.toStatus);
		const cancelled = h.at(-1)!.toStatus === "cancelled";
		expect((await call<Body<"GET /api/orgs/:orgId/products/:productId">>("GET", `${s.base}/products/${p.id}`, { token: s.admin.token })).json.stock).toBe(cancelled ? 46 : 44);
	});

	it("refuses unknown, inactive and cross-currency items with per-item errors", async () => {
		const s = await seedTenant();
		const draft = await createProduct(s, { status: "draft" });
		const usd = await createProduct(s, { currency: "USD" });
		const inr = await createProduct(s);
		const res = await call<Problem>("POST", `${s.base}/orders`, {
			token: s.admin.token,
			body: {
				items: [
					{ productId: "prd_missing", quantity: 1 },
					{ productId: draft.id, quantity: 1 },
				],
			},
		});
		expect(res.status).toBe(400);
		expect(res.json.errors?.map((e) => e.path)).toEqual(["items.0.productId", "items.1.productId"]);
		const mixed = await call<Body<"POST /api/orgs/:orgId/orders">>("POST", `${s.base}/orders`, {
			token: s.admin.token,
			body: {
				items: [
					{ productId: usd.id, quantity: 1 },
					{ productId: inr.id, quantity: 1 },
				],
			},
		});
		expect(mixed.status).toBe(400);
	});
});
