import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { envelope, membershipData } from "../helpers/clerk";
import { uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { deliver, messageFor } from "../helpers/queue";
import { type Body, call } from "../helpers/request";
import { storeCall } from "../../src/tenant-store/directory";
import { holdStoreD1, inStore, storeSql } from "../helpers/store";
import { TEST_AZP } from "../helpers/vars";
import { seedTenant, type Tenant } from "../helpers/tenant";

type Product = Body<"POST /api/orgs/:orgId/products">;
type Verify = Body<"GET /api/orgs/:orgId/audit-logs/verify">;

/** The shared D1 tables that held tenant data before the stores (the directory must not receive writes to them). */
const TENANT_TABLES = [
	"categories",
	"products",
	"variants",
	"orders",
	"order_items",
	"order_status_history",
	"idempotency_keys",
	"audit_logs",
	"audit_checkpoints",
	"outbox",
	"webhook_endpoints",
	"webhook_deliveries",
];

async function d1TenantRows(): Promise<Record<string, number>> {
	const results = await env.DB.batch(TENANT_TABLES.map((t) => env.DB.prepare(`SELECT count(*) AS n FROM ${t}`)));
	return Object.fromEntries(TENANT_TABLES.map((t, i) => [t, (results[i]?.results[0] as { n: number }).n]));
}

async function createProduct(t: Tenant, name: string, stock = 10): Promise<Product> {
	const res = await call<Product>("POST", `${t.base}/products`, {
		token: t.admin.token,
		body: { name, sku: uid("SKU"), priceMinor: 1500, currency: "INR", status: "active", stock },
	});
	expect(res.status, res.text).toBe(201);
	return res.json;
}

/**
 * `n` organizations with one admin each, written in one D1 batch: the test's own invocation stays far
 * below what a local workerd serves per invocation (about 2,000 D1 calls), while each API call is a
 * request of its own.
 */
async function seedTenants(n: number): Promise<Tenant[]> {
	const now = Date.now();
	const specs = Array.from({ length: n }, () => ({ orgId: uid("org"), userId: uid("user"), membershipId: uid("orgmem") }));
	await env.DB.batch(
		specs.flatMap((s) => [
			env.DB.prepare("INSERT INTO organizations (id, name, slug, source_updated_at, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?)").bind(
				s.orgId,
				`Org ${s.orgId}`,
				s.orgId.toLowerCase(),
				now,
				now,
			),
			env.DB.prepare("INSERT INTO users (id, email, source_updated_at, created_at, updated_at) VALUES (?, ?, 1, ?, ?)").bind(
				s.userId,
				`${s.userId}@example.com`,
				now,
				now,
			),
			env.DB.prepare(
				"INSERT INTO memberships (id, organization_id, user_id, role, source_updated_at, created_at, updated_at) VALUES (?, ?, ?, 'org:admin', 1, ?, ?)",
			).bind(s.membershipId, s.orgId, s.userId, now, now),
		]),
	);
	return Promise.all(
		specs.map(async (s) => {
			const token = await signToken({ userId: s.userId, expiresIn: 3600 });
			return { orgId: s.orgId, base: `/api/orgs/${s.orgId}`, admin: { id: s.userId, role: "org:admin", token }, member: { id: s.userId, role: "org:admin", token } };
		}),
	);
}

/** Runs `work` over `items` with at most `limit` in flight (a local workerd serves a bounded fan-out per request). */
async function inParallel<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
	const out: R[] = new Array(items.length);
	let next = 0;
	await Promise.all(
		Array.from({ length: Math.min(limit, items.length) }, async () => {
			while (next < items.length) {
				const i = next++;
				out[i] = await work(items[i] as T);
			}
		}),
	);
	return out;
}

const TENANTS = 200;

/** A member Clerk's organizationMembership.created made, with a session token; `remove` delivers its .deleted. */
async function clerkMember(t: Tenant) {
	const memberId = uid("user");
	const membershipId = uid("orgmem");
	await deliver([messageFor(envelope("organizationMembership.created", membershipData(membershipId, t.orgId, memberId)))]);
	return {
		token: await signToken({ userId: memberId }),
		remove: () => deliver([messageFor(envelope("organizationMembership.deleted", membershipData(membershipId, t.orgId, memberId), Date.now()))]),
	};
}

describe("tenant stores: one SQLite Durable Object per tenant, D1 as the directory", () => {
	it("200 tenants used in parallel: each sees only its own data, every audit chain is intact, and D1 gets no tenant rows", async () => {
		const before = await d1TenantRows();
		const seeded = await seedTenants(TENANTS);
		const tenants = await inParallel(
			seeded.map((t, i) => ({ t, i })),
			10,
			async ({ t, i }) => {
				const product = await createProduct(t, `Tenant ${i} product`);
				const order = await call<Body<"POST /api/orgs/:orgId/orders">>("POST", `${t.base}/orders`, {
					token: t.admin.token,
					body: { items: [{ productId: product.id, quantity: 2 }] },
				});
				expect(order.status, order.text).toBe(201);
				return { t, product, orderId: order.json.id };
			},
		);
		await inParallel(tenants, 10, async ({ t, product, orderId }) => {
			const list = await call<Body<"GET /api/orgs/:orgId/products">>("GET", `${t.base}/products`, { token: t.admin.token });
			expect(list.status).toBe(200);
			expect(list.json.data.map((p) => p.id)).toEqual([product.id]);
			const orders = await call<Body<"GET /api/orgs/:orgId/orders">>("GET", `${t.base}/orders`, { token: t.admin.token });
			expect(orders.json.data.map((o) => o.id)).toEqual([orderId]);
			const verify = await call<Verify>("GET", `${t.base}/audit-logs/verify`, { token: t.admin.token });
			expect(verify.status, verify.text).toBe(200);
			expect(verify.json.intact).toBe(true);
			// product.created and order.created, chained in this tenant's store.
			expect(verify.json.entries).toBeGreaterThanOrEqual(2);
		});
		// The stores hold their own organization's rows only (a sample: each check is a call into the object from this test).
		for (const { t } of tenants.slice(0, 20)) {
			const foreign = await storeSql<{ n: number }>(
				t.orgId,
				"SELECT (SELECT count(*) FROM products WHERE organization_id <> ?1) + (SELECT count(*) FROM orders WHERE organization_id <> ?1) + (SELECT count(*) FROM audit_logs WHERE organization_id <> ?1) AS n",
				t.orgId,
			);
			expect(foreign).toEqual([{ n: 0 }]);
		}
		// Another tenant's ids are not found through this tenant's routes.
		const [a, b] = tenants;
		const cross = await call("GET", `${a?.t.base}/products/${b?.product.id}`, { token: a?.t.admin.token });
		expect(cross.status).toBe(404);
		expect(await d1TenantRows()).toEqual(before);
	}, 420_000);

	it("200 concurrent orders against a stock of 100: exactly 100 succeed and the stock ends at 0", async () => {
		const t = await seedTenant({ plan: "enterprise", limits: { rateLimitPerMinute: 100_000, userRateLimitPerMinute: 100_000 } });
		const product = await createProduct(t, "Scarce", 100);
		const results = await Promise.all(
			Array.from({ length: 200 }, () =>
				call("POST", `${t.base}/orders`, {
					token: t.admin.token,
					body: { items: [{ productId: product.id, quantity: 1 }] },
				}),
			),
		);
		const statuses = results.map((r) => r.status);
		expect(statuses.filter((s) => s === 201)).toHaveLength(100);
		expect(statuses.filter((s) => s !== 201).every((s) => s === 409)).toBe(true);
		const after = await call<Product>("GET", `${t.base}/products/${product.id}`, { token: t.admin.token });
		expect(after.json.stock).toBe(0);
		expect(await storeSql(t.orgId, "SELECT count(*) AS n FROM orders")).toEqual([{ n: 100 }]);
	}, 240_000);

	it("a membership deleted in Clerk answers 403 on the tenant's next request once the event is consumed", async () => {
		const t = await seedTenant();
		const { token, remove } = await clerkMember(t);
		// The store mirrors the member (first request), then serves from its mirror.
		expect((await call("GET", `${t.base}/products`, { token })).status).toBe(200);
		expect((await call("GET", `${t.base}/products`, { token })).status).toBe(200);
		const consumed = await remove();
		expect(consumed.explicitAcks).toHaveLength(1);
		expect(consumed.retryMessages).toHaveLength(0);
		const denied = await call("GET", `${t.base}/products`, { token });
		expect(denied.status, denied.text).toBe(403);
	});

	it("a membership deleted while the store reads the member from the directory: the next request is 403 (the read is not kept)", async () => {
		const t = await seedTenant();
		const { token, remove } = await clerkMember(t);
		expect((await call("GET", `${t.base}/products`, { token: t.admin.token })).status).toBe(200);
		// The member's first request: the store reads the membership, then the seat standing, held here.
		const held = await holdStoreD1(t.orgId, (q) => q.includes("AS ahead"));
		const first = call("GET", `${t.base}/products`, { token });
		await held.reached;
		// Meanwhile Clerk's membership.deleted is consumed: the directory changes, the store is told.
		const consumed = await remove();
		expect(consumed.retryMessages).toHaveLength(0);
		held.release();
		// The request under way was admitted before the removal; the store did not keep that answer.
		expect((await first).status).toBe(200);
		const next = await call("GET", `${t.base}/products`, { token });
		expect(next.status, next.text).toBe(403);
	});

	it("the store answers with the caller's organization only: a member of A is refused on B's store routes", async () => {
		const a = await seedTenant();
		const b = await seedTenant();
		await createProduct(b, "B only");
		const res = await call("GET", `${b.base}/products`, { token: a.admin.token });
		expect(res.status).toBe(403);
		expect(res.headers.get("content-type")).toBe("application/problem+json");
	});

	it("directory reads go through a D1 session: the answer carries its bookmark, which the next request sends back", async () => {
		const t = await seedTenant();
		const first = await call("GET", t.base, { token: t.admin.token });
		expect(first.status).toBe(200);
		const bookmark = first.headers.get("x-d1-bookmark");
		expect(bookmark).toMatch(/^[0-9a-f]+(-[0-9a-f]+){2,}$/);
		const again = await call("GET", t.base, { token: t.admin.token, headers: { "x-d1-bookmark": bookmark as string } });
		expect(again.status).toBe(200);
		expect(again.headers.get("x-d1-bookmark")).toBeTruthy();
		// A malformed bookmark is ignored (never passed to D1), not an error.
		const junk = await call("GET", t.base, { token: t.admin.token, headers: { "x-d1-bookmark": "not-a-bookmark" } });
		expect(junk.status).toBe(200);
		// An answer from the isolate's caches reads nothing from the directory: it hands back the bookmark as
		// sent (still what the client has seen), and none for a malformed one.
		const me = await call("GET", "/api/me", { token: t.admin.token });
		expect(me.status).toBe(200);
		const cached = await call("GET", "/api/me", { token: t.admin.token, headers: { "x-d1-bookmark": bookmark as string } });
		expect(cached.headers.get("x-d1-bookmark")).toBe(bookmark);
		const cachedJunk = await call("GET", "/api/me", { token: t.admin.token, headers: { "x-d1-bookmark": "not-a-bookmark" } });
		expect(cachedJunk.headers.get("x-d1-bookmark")).toBeNull();
	});
});

describe("the gateway answers as the Worker would for a tenant on the shared tables", () => {
	it("CORS once: a store-served answer to an allowed origin has one Vary: Origin, like any other", async () => {
		const t = await seedTenant();
		const res = await call("GET", `${t.base}/products`, { token: t.admin.token, headers: { origin: TEST_AZP } });
		expect(res.status, res.text).toBe(200);
		expect(res.headers.get("access-control-allow-origin")).toBe(TEST_AZP);
		expect(res.headers.get("vary")).toBe("Origin");
		const foreign = await call("GET", `${t.base}/products`, { token: t.admin.token, headers: { origin: "https://evil.example" } });
		expect(foreign.headers.get("vary")).toBe("Origin");
		expect(foreign.headers.get("access-control-allow-origin")).toBeNull();
	});

	it("a trailing slash is another path: 404 before any credential is asked for, as on the shared tables", async () => {
		const t = await seedTenant();
		const res = await call("GET", `${t.base}/products/`);
		expect(res.status, res.text).toBe(404);
	});

	it("an organization nobody made gets no store: a signed-in stranger's request answers 404 and binds no object to the id", async () => {
		const t = await seedTenant();
		const madeUp = uid("org");
		const res = await call("GET", `/api/orgs/${madeUp}/products`, { token: t.admin.token });
		expect(res.status, res.text).toBe(404);
		expect((await inStore(madeUp, (store) => store.stats())).organizationId).toBeNull();
		// A member of a new organization (known so far only from the token's claims) is served by its store.
		const orgId = uid("org");
		const userId = uid("user");
		const token = await signToken({ userId, orgId, role: "org:admin" });
		const first = await call("GET", `/api/orgs/${orgId}/products`, { token });
		expect(first.status, first.text).toBe(200);
		expect((await inStore(orgId, (store) => store.stats())).organizationId).toBe(orgId);
	});

	it("a store call the runtime marks retryable (a lost connection, a reset by a deploy) is a 503 with Retry-After, not a 500", async () => {
		const lost = Object.assign(new Error("Network connection lost."), { retryable: true });
		const route = { state: "store" as const, region: "default" as const };
		await expect(storeCall(env, uid("org"), route, async () => Promise.reject(lost))).rejects.toMatchObject({
			code: "UPSTREAM_UNAVAILABLE",
			headers: { "Retry-After": "1" },
		});
		const bug = new Error("a bug");
		await expect(storeCall(env, uid("org"), route, async () => Promise.reject(bug))).rejects.toBe(bug);
	});
});
