import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createApp } from "../../src/app";
import { seedUser, uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { stubNetwork } from "../helpers/network";
import { type Body, call } from "../helpers/request";
import { captureTenantEvents, deliverTenant } from "../helpers/tenant-queue";
import { seedTenant, type Tenant } from "../helpers/tenant";

/** Placeholders for the ids a tenant's paths and bodies refer to, filled from the tenant's data. */
interface Ids {
	categoryId: string;
	productId: string;
	variantId: string;
	orderId: string;
	endpointId: string;
	deliveryId: string;
	/** A member of the tenant (members/:userId). */
	userId: string;
	/** A pending invitation of the tenant. */
	invitationId: string;
	/** An API key of the tenant (api-keys/:keyId). */
	keyId: string;
}

// The admin's token also claims the organization as active with the admin role: the strongest
// claim a foreign caller can bring.
const MEMBERS = {
	admin: { role: "org:admin", activeOrg: true },
	member: "org:member",
	viewer: { permissions: [] },
} as const;
type Seeded = Tenant<typeof MEMBERS> & Ids & {
	secret: string;
	/** The plaintext of an API key of the tenant holding every permission its admin holds. */
	apiKey: string;
};

/** A tenant (pro plan) with one of everything, named with a secret marker that must never show up elsewhere. */
async function tenantWithData(): Promise<Seeded> {
	const t = await seedTenant({ plan: "pro", members: MEMBERS });
	// Nothing reaches the real tenant-events queue while seeding: no fan-out or audit write lands later.
	const sent = captureTenantEvents(vi);
	const secret = `SECRET-${uid("X")}`;
	const token = t.admin.token;
	const post = async <T extends { id: string }>(path: string, body: unknown) => {
		const res = await call<T>("POST", `${t.base}${path}`, { token, body });
		if (res.status !== 201) throw new Error(`seeding ${path}: ${res.status} ${res.text}`);
		return res.json;
	};
	const endpoint = await post<Body<"POST /api/orgs/:orgId/webhooks">>("/webhooks", {
		url: `https://hooks.tenant.example.com/${secret}`,
		eventTypes: ["*"],
	});
	const cat = await post<Body<"POST /api/orgs/:orgId/categories">>("/categories", {
		name: secret,
		slug: secret.toLowerCase().replace(/_/g, "-"),
	});
	const prd = await post<Body<"POST /api/orgs/:orgId/products">>("/products", {
		name: secret,
		sku: secret,
		priceMinor: 100,
		currency: "INR",
		status: "active",
		stock: 50,
		categoryId: cat.id,
	});
	const v = await post<Body<"POST /api/orgs/:orgId/products/:productId/variants">>(`/products/${prd.id}/variants`, {
		name: secret,
		sku: `${secret}-V`,
		stock: 5,
	});
	const ord = await post<Body<"POST /api/orgs/:orgId/orders">>("/orders", {
		items: [{ productId: prd.id, quantity: 1 }],
		customerEmail: `${secret.toLowerCase()}@example.com`,
	});
	// The order's event fans out to the endpoint: a real delivery (its sending stays captured).
	await deliverTenant(sent.filter((m) => m.kind === "webhook.event" && m.type === "order.created"));
	const delivery = await env.DB.prepare("SELECT id FROM webhook_deliveries WHERE organization_id = ? AND endpoint_id = ?")
		.bind(t.orgId, endpoint.id)
		.first<{ id: string }>();
	if (!delivery) throw new Error("seeding failed: no delivery");
	const invitationId = uid("orginv");
	await env.DB.prepare(
		"INSERT INTO invitations (id, organization_id, email, role, status, source_updated_at, created_at, updated_at) VALUES (?, ?, ?, 'org:member', 'pending', 1, 0, 0)",
	)
		.bind(invitationId, t.orgId, `${secret.toLowerCase()}@example.com`)
		.run();
	const adminPermissions = await env.DB.prepare(
		"SELECT p.key AS key FROM role_permissions rp JOIN permissions p ON p.id = rp.permission_id WHERE rp.role_id = 'role_system_admin' AND p.deleted_at IS NULL",
	).all<{ key: string }>();
	const key = await post<Body<"POST /api/orgs/:orgId/api-keys">>("/api-keys", {
		name: secret,
		permissions: adminPermissions.results.map((r) => r.key),
	});
	vi.restoreAllMocks();
	return {
		...t,
		secret,
		apiKey: key.key,
		keyId: key.id,
		categoryId: cat.id,
		productId: prd.id,
		variantId: v.id,
		orderId: ord.id,
		endpointId: endpoint.id,
		deliveryId: delivery.id,
		userId: t.member.id,
		invitationId,
	};
}

/** Routes any member may call (no permission beyond membership); every other tenant route needs one. */
const ANY_MEMBER = new Set(["GET /api/orgs/:orgId"]);

/**
 * Well-formed bodies for the write routes, so a refusal is about who calls, not about the body. Ids
 * in braces are the target tenant's. A write route missing here is sent `{}`: it must refuse anyway.
 */
const BODIES: Record<string, unknown> = {
	"POST /api/orgs/:orgId/categories": { name: "n", slug: "n" },
	"PATCH /api/orgs/:orgId/categories/:categoryId": { name: "pwned" },
	"POST /api/orgs/:orgId/products": { name: "n", sku: "N-1", priceMinor: 1, currency: "INR" },
	"PATCH /api/orgs/:orgId/products/:productId": { name: "pwned" },
	"POST /api/orgs/:orgId/products/:productId/inventory": { delta: -50 },
	"POST /api/orgs/:orgId/products/:productId/variants": { name: "v", sku: "V-1" },
	"PATCH /api/orgs/:orgId/products/:productId/variants/:variantId": { name: "pwned" },
	"POST /api/orgs/:orgId/orders": { items: [{ productId: "{productId}", quantity: 1 }] },
	"POST /api/orgs/:orgId/orders/:orderId/status": { status: "cancelled" },
	"POST /api/orgs/:orgId/billing/checkout": {
		plan: "enterprise",
		successUrl: "https://app.example/ok",
		cancelUrl: "https://app.example/cancel",
	},
	"POST /api/orgs/:orgId/billing/cancel": { atPeriodEnd: false },
	"POST /api/orgs/:orgId/billing/portal": { returnUrl: "https://app.example/billing" },
	"POST /api/orgs/:orgId/webhooks": { url: "https://hooks.tenant.example.com/pwned", eventTypes: ["*"] },
	"PATCH /api/orgs/:orgId/webhooks/:endpointId": { status: "disabled" },
	"POST /api/orgs/:orgId/invitations": { emailAddress: "pwned@example.com", role: "org:admin" },
	"PATCH /api/orgs/:orgId/members/:userId": { role: "org:admin" },
	"POST /api/orgs/:orgId/api-keys": { name: "pwned", permissions: [] },
	"PATCH /api/orgs/:orgId/api-keys/:keyId": { name: "pwned" },
};

// Every tenant-scoped route, from the app itself: a new route is covered without editing this file.
const routes = [
	...new Map(
		createApp()
			.routes.filter((r) => r.method !== "ALL" && r.path.startsWith("/api/orgs/:orgId"))
			.map((r) => [`${r.method} ${r.path}`, { method: r.method, path: r.path, key: `${r.method} ${r.path}` }]),
	).values(),
].map((r) => ({
	...r,
	kind: r.method === "GET" ? ("read" as const) : ("write" as const),
	body: r.method === "GET" || r.method === "DELETE" ? undefined : (BODIES[r.key] ?? {}),
	/** Refers to the target tenant's resources by id (in the path or the body). */
	hasId: /:(?!orgId\b)\w+/.test(r.path) || /\{\w+\}/.test(JSON.stringify(BODIES[r.key] ?? {})),
}));

/** The route's path for organization `orgId`, with the ids of `ids`; an unknown parameter fails loudly. */
function fill(path: string, orgId: string, ids: Ids) {
	return path.replace(/:(\w+)/g, (_, p: string) => {
		if (p === "orgId") return orgId;
		if (!(p in ids)) throw new Error(`no test data for :${p} in ${path}: add it to tenantWithData`);
		return ids[p as keyof Ids];
	});
}
const fillBody = (b: unknown, ids: Ids) =>
	b === undefined ? undefined : JSON.parse(JSON.stringify(b).replace(/\{(\w+)\}/g, (_, k: string) => ids[k as keyof Ids]));

let A: Seeded;
let B: Seeded;
let outsider: string;

beforeAll(async () => {
	// beforeAll runs before the per-test network stub: seeding needs its own.
	stubNetwork(vi);
	A = await tenantWithData();
	B = await tenantWithData();
	outsider = await signToken({ userId: await seedUser(), expiresIn: 3600 });
	vi.restoreAllMocks();
});
afterAll(() => {
	vi.restoreAllMocks();
});

/** Everything of B a write could change. */
async function snapshotB() {
	const q = (sql: string) => env.DB.prepare(sql).bind(B.orgId).all();
	return {
		organization: (await q("SELECT plan, monthly_quota, rate_limit_per_minute FROM organizations WHERE id = ?")).results,
		products: (await q("SELECT id, name, sku, stock, version FROM products WHERE organization_id = ? ORDER BY id")).results,
		variants: (await q("SELECT id, name, stock, version FROM variants WHERE organization_id = ? ORDER BY id")).results,
		categories: (await q("SELECT id, name, version FROM categories WHERE organization_id = ? ORDER BY id")).results,
		orders: (await q("SELECT id, status, version FROM orders WHERE organization_id = ? ORDER BY id")).results,
		endpoints: (
			await q("SELECT id, url, status, version FROM webhook_endpoints WHERE organization_id = ? ORDER BY id")
		).results,
		deliveries: (await q("SELECT id, status, attempts FROM webhook_deliveries WHERE organization_id = ? ORDER BY id")).results,
		memberships: (await q("SELECT user_id, role, deleted_at FROM memberships WHERE organization_id = ? ORDER BY id")).results,
		invitations: (await q("SELECT id, status FROM invitations WHERE organization_id = ? ORDER BY id")).results,
		apiKeys: (
			await q("SELECT id, name, hash, permissions, rate_limit_per_minute, revoked_at FROM api_keys WHERE organization_id = ? ORDER BY id")
		).results,
	};
}

const noLeak = (text: string) => {
	expect(text).not.toContain(B.secret);
	expect(text.toLowerCase()).not.toContain(B.secret.toLowerCase());
};

describe.each(routes)("$method $path", (route) => {
	const onB = () => ({ path: fill(route.path, B.orgId, B), body: fillBody(route.body, B) });

	it("a member (admin) of another organization: 403 on B's path, nothing of B leaks or changes", async () => {
		const before = await snapshotB();
		const { path, body } = onB();
		const res = await call(route.method, path, { token: A.admin.token, body });
		expect(res.status, res.text).toBe(403);
		noLeak(res.text);
		expect(await snapshotB()).toEqual(before);
	});

	it("an API key of another organization, holding every permission there: 403 like a non-member", async () => {
		const before = await snapshotB();
		const { path, body } = onB();
		const res = await call(route.method, path, { token: A.apiKey, body });
		expect(res.status, res.text).toBe(403);
		noLeak(res.text);
		expect(await snapshotB()).toEqual(before);
	});

	it("a signed-in user with no membership: 403", async () => {
		const before = await snapshotB();
		const { path, body } = onB();
		const res = await call(route.method, path, { token: outsider, body });
		expect(res.status, res.text).toBe(403);
		noLeak(res.text);
		expect(await snapshotB()).toEqual(before);
	});

	it("a caller with too few permissions: 403", async () => {
		const { path, body } = onB();
		const before = await snapshotB();
		const viewer = await call(route.method, path, { token: B.viewer.token, body });
		if (ANY_MEMBER.has(route.key)) {
			// Membership is all this route asks for: the permission-less member gets in.
			expect(viewer.status, viewer.text).toBe(200);
			return;
		}
		expect(viewer.status, viewer.text).toBe(403);
		noLeak(viewer.text);
		if (route.kind === "write") {
			const member = await call(route.method, path, { token: B.member.token, body });
			expect(member.status, member.text).toBe(403);
		}
		expect(await snapshotB()).toEqual(before);
	});
});

describe.each(routes.filter((r) => r.hasId))("$method $path with B's ids", (route) => {
	it("guessing B's ids from A's own organization: 404 / 400, nothing leaks or changes", async () => {
		const before = await snapshotB();
		const res = await call(route.method, fill(route.path, A.orgId, B), {
			token: A.admin.token,
			body: fillBody(route.body, B),
		});
		// Ids in the path are not found; an order for B's product id is a validation error on that item.
		expect([400, 404], res.text).toContain(res.status);
		noLeak(res.text);
		expect(await snapshotB()).toEqual(before);
	});
});

describe("the battery", () => {
	it("covers every tenant route: the store, members, events, billing, audit, usage and webhooks", () => {
		expect(routes.length).toBeGreaterThanOrEqual(35);
		const paths = routes.map((r) => r.path);
		for (const p of [
			"/products",
			"/orders",
			"/categories",
			"/members",
			"/members/:userId",
			"/invitations",
			"/invitations/:invitationId",
			"/events",
			"/billing",
			"/audit-logs",
			"/usage",
			"/webhooks",
			"/api-keys",
			"/api-keys/:keyId/rotate",
		]) {
			expect(paths.some((x) => x.includes(p)), p).toBe(true);
		}
	});
});

describe("lists never mix tenants", () => {
	it("A's admin lists only A's rows", async () => {
		const token = A.admin.token;
		for (const path of ["/categories", "/products", "/orders"]) {
			const res = await call<{ data: unknown[] }>("GET", `${A.base}${path}?limit=100`, { token });
			expect(res.status).toBe(200);
			expect(res.json.data.length).toBeGreaterThan(0);
			expect(res.text).not.toContain(B.secret);
			expect(res.text).not.toContain(B.productId);
		}
		const bySku = await call<Body<"GET /api/orgs/:orgId/products">>(
			"GET",
			`${A.base}/products?sku=${encodeURIComponent(B.secret)}`,
			{ token },
		);
		expect(bySku.json.data).toEqual([]);
	});
});
