import { env } from "cloudflare:workers";
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { seedMembership, seedTenant, seedUser, uid } from "../helpers/factories";
import { signToken, stubJwks } from "../helpers/jwt";
import { call } from "../helpers/request";

beforeEach(() => {
	stubJwks(vi);
});
afterEach(() => {
	vi.restoreAllMocks();
});

interface Ids {
	org: string;
	cat: string;
	prd: string;
	var: string;
	ord: string;
	secret: string;
}

/** A tenant with one of everything, named with a secret marker that must never show up elsewhere. */
async function tenantWithData(): Promise<Ids & { admin: string; member: string; viewer: string }> {
	stubJwks(vi);
	const t = await seedTenant();
	const viewer = await seedUser();
	const roleKey = `org:${uid("noperm").toLowerCase()}`;
	await env.DB.prepare(
		"INSERT INTO roles (id, organization_id, key, name, source_updated_at, created_at, updated_at) VALUES (?, NULL, ?, 'No perms', 1, 0, 0)",
	)
		.bind(uid("role"), roleKey)
		.run();
	await seedMembership(t.orgId, viewer, roleKey);
	const secret = `SECRET-${uid("X")}`;
	const admin = await signToken({ userId: t.admin });
	const base = `/api/orgs/${t.orgId}`;
	const cat = (
		await call("POST", `${base}/categories`, {
			token: admin,
			body: { name: secret, slug: secret.toLowerCase().replace(/_/g, "-") },
		})
	).json;
	const prd = (
		await call("POST", `${base}/products`, {
			token: admin,
			body: { name: secret, sku: secret, priceMinor: 100, currency: "INR", status: "active", stock: 50, categoryId: cat.id },
		})
	).json;
	const v = (
		await call("POST", `${base}/products/${prd.id}/variants`, {
			token: admin,
			body: { name: secret, sku: `${secret}-V`, stock: 5 },
		})
	).json;
	const ord = (
		await call("POST", `${base}/orders`, {
			token: admin,
			body: { items: [{ productId: prd.id, quantity: 1 }], customerEmail: `${secret.toLowerCase()}@example.com` },
		})
	).json;
	if (!cat.id || !prd.id || !v.id || !ord.id) throw new Error("seeding failed");
	return { org: t.orgId, cat: cat.id, prd: prd.id, var: v.id, ord: ord.id, secret, admin: t.admin, member: t.member, viewer };
}

type Kind = "read" | "write";
const routes: { method: string; path: string; kind: Kind; body?: unknown; hasId: boolean }[] = [
	{ method: "GET", path: "/categories", kind: "read", hasId: false },
	{ method: "POST", path: "/categories", kind: "write", body: { name: "n", slug: "n" }, hasId: false },
	{ method: "GET", path: "/categories/{cat}", kind: "read", hasId: true },
	{ method: "PATCH", path: "/categories/{cat}", kind: "write", body: { name: "pwned" }, hasId: true },
	{ method: "DELETE", path: "/categories/{cat}", kind: "write", hasId: true },
	{ method: "GET", path: "/products", kind: "read", hasId: false },
	{
		method: "POST",
		path: "/products",
		kind: "write",
		body: { name: "n", sku: "N-1", priceMinor: 1, currency: "INR" },
		hasId: false,
	},
	{ method: "GET", path: "/products/{prd}", kind: "read", hasId: true },
	{ method: "PATCH", path: "/products/{prd}", kind: "write", body: { name: "pwned" }, hasId: true },
	{ method: "DELETE", path: "/products/{prd}", kind: "write", hasId: true },
	{ method: "POST", path: "/products/{prd}/inventory", kind: "write", body: { delta: -50 }, hasId: true },
	{ method: "GET", path: "/products/{prd}/variants", kind: "read", hasId: true },
	{ method: "POST", path: "/products/{prd}/variants", kind: "write", body: { name: "v", sku: "V-1" }, hasId: true },
	{ method: "PATCH", path: "/products/{prd}/variants/{var}", kind: "write", body: { name: "pwned" }, hasId: true },
	{ method: "DELETE", path: "/products/{prd}/variants/{var}", kind: "write", hasId: true },
	{ method: "GET", path: "/orders", kind: "read", hasId: false },
	{ method: "POST", path: "/orders", kind: "write", body: { items: [{ productId: "{prd}", quantity: 1 }] }, hasId: false },
	{ method: "GET", path: "/orders/{ord}", kind: "read", hasId: true },
	{ method: "POST", path: "/orders/{ord}/status", kind: "write", body: { status: "cancelled" }, hasId: true },
];

const fill = (s: string, ids: Ids) => s.replace(/\{(cat|prd|var|ord)\}/g, (_, k: keyof Ids) => ids[k]);
const fillBody = (b: unknown, ids: Ids) => (b === undefined ? undefined : JSON.parse(fill(JSON.stringify(b), ids)));

let A: Awaited<ReturnType<typeof tenantWithData>>;
let B: Awaited<ReturnType<typeof tenantWithData>>;
let outsider: string;

beforeAll(async () => {
	A = await tenantWithData();
	B = await tenantWithData();
	outsider = await seedUser();
	vi.restoreAllMocks();
});

async function snapshotB() {
	const q = (sql: string) => env.DB.prepare(sql).bind(B.org).all();
	return {
		products: (await q("SELECT id, name, sku, stock, version FROM products WHERE organization_id = ? ORDER BY id")).results,
		variants: (await q("SELECT id, name, stock, version FROM variants WHERE organization_id = ? ORDER BY id")).results,
		categories: (await q("SELECT id, name, version FROM categories WHERE organization_id = ? ORDER BY id")).results,
		orders: (await q("SELECT id, status, version FROM orders WHERE organization_id = ? ORDER BY id")).results,
	};
}

describe.each(routes)("$method /api/orgs/:orgId$path", (route) => {
	const noLeak = (text: string) => {
		expect(text).not.toContain(B.secret);
		expect(text.toLowerCase()).not.toContain(B.secret.toLowerCase());
	};

	it("a member (admin) of another organization: 403 on B's path, nothing of B leaks or changes", async () => {
		const before = await snapshotB();
		const res = await call(route.method, `/api/orgs/${B.org}${fill(route.path, B)}`, {
			token: await signToken({ userId: A.admin, orgId: A.org, role: "org:admin" }),
			body: fillBody(route.body, B),
		});
		expect(res.status, res.text).toBe(403);
		noLeak(res.text);
		expect(await snapshotB()).toEqual(before);
	});

	it("a signed-in user with no membership: 403", async () => {
		const res = await call(route.method, `/api/orgs/${B.org}${fill(route.path, B)}`, {
			token: await signToken({ userId: outsider }),
			body: fillBody(route.body, B),
		});
		expect(res.status, res.text).toBe(403);
		noLeak(res.text);
	});

	it("a caller with too few permissions: 403", async () => {
		const viewer = await call(route.method, `/api/orgs/${B.org}${fill(route.path, B)}`, {
			token: await signToken({ userId: B.viewer }),
			body: fillBody(route.body, B),
		});
		expect(viewer.status, viewer.text).toBe(403);
		noLeak(viewer.text);
		if (route.kind === "write") {
			const before = await snapshotB();
			const member = await call(route.method, `/api/orgs/${B.org}${fill(route.path, B)}`, {
				token: await signToken({ userId: B.member }),
				body: fillBody(route.body, B),
			});
			expect(member.status, member.text).toBe(403);
			expect(await snapshotB()).toEqual(before);
		}
	});
});

describe.each(routes.filter((r) => r.hasId || (r.method === "POST" && r.path === "/orders")))(
	"$method /api/orgs/:orgId$path with B's ids",
	(route) => {
		it("guessing B's ids from A's own organization: 404 / 400, nothing leaks or changes", async () => {
			const before = await snapshotB();
			const res = await call(route.method, `/api/orgs/${A.org}${fill(route.path, B)}`, {
				token: await signToken({ userId: A.admin }),
				body: fillBody(route.body, B),
			});
			// Ids in the path are not found; an order for B's product id is a validation error on that item.
			expect([400, 404], res.text).toContain(res.status);
			expect(res.text.toLowerCase()).not.toContain(B.secret.toLowerCase());
			expect(await snapshotB()).toEqual(before);
		});
	},
);

describe("lists never mix tenants", () => {
	it("A's admin lists only A's rows", async () => {
		const token = await signToken({ userId: A.admin });
		for (const path of ["/categories", "/products", "/orders"]) {
			const res = await call("GET", `/api/orgs/${A.org}${path}?limit=100`, { token });
			expect(res.status).toBe(200);
			expect(res.json.data.length).toBeGreaterThan(0);
			expect(res.text).not.toContain(B.secret);
			expect(res.text).not.toContain(B.prd);
		}
		const bySku = await call("GET", `/api/orgs/${A.org}/products?sku=${encodeURIComponent(B.secret)}`, { token });
		expect(bySku.json.data).toEqual([]);
	});
});
