import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createApp } from "../../src/app";
import { TenantStoreObject } from "../../src/tenant-store/object";
import { seedUser, uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { stubNetwork } from "../helpers/network";
import { type Body, call } from "../helpers/request";
import { runStoreAlarm, storeOf, storeSql } from "../helpers/store";
import { captureTenantEvents } from "../helpers/tenant-queue";
import { seedTenant, type Tenant } from "../helpers/tenant";
import { eventually } from "../helpers/wait";

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
	// The store fans the order's event out to the endpoint: a real delivery, which its alarm hands to the
	// tenant-events queue (captured: it is never attempted, so nothing of it changes later).
	const [delivery] = await eventually(
		() => storeSql<{ id: string }>(t.orgId, "SELECT id FROM webhook_deliveries WHERE organization_id = ? AND endpoint_id = ?", t.orgId, endpoint.id),
		(rows) => rows.length > 0,
	);
	if (!delivery) throw new Error("seeding failed: no delivery");
	await runStoreAlarm(t.orgId);
	const handedOn = await eventually(
		async () => ({
			pending: (await storeSql<{ n: number }>(t.orgId, "SELECT count(*) AS n FROM outbox WHERE status = 'pending'"))[0]?.n,
			sent: sent.some((m) => m.kind === "webhook.deliver" && m.deliveryId === delivery.id),
		}),
		(v) => v.pending === 0 && v.sent,
	);
	if (!handedOn.sent || handedOn.pending !== 0) throw new Error(`seeding failed: the delivery was not handed on (${JSON.stringify(handedOn)})`);
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

/** Everything of B a write could change: its directory rows (D1) and its data (B's store). */
async function snapshotB() {
	const q = async (sql: string) => (await env.DB.prepare(sql).bind(B.orgId).all()).results;
	const store = (sql: string) => storeSql(B.orgId, sql, B.orgId);
	return {
		organization: await q("SELECT plan, monthly_quota, rate_limit_per_minute FROM organizations WHERE id = ?"),
		products: await store("SELECT id, name, sku, stock, version FROM products WHERE organization_id = ? ORDER BY id"),
		variants: await store("SELECT id, name, stock, version FROM variants WHERE organization_id = ? ORDER BY id"),
		categories: await store("SELECT id, name, version FROM categories WHERE organization_id = ? ORDER BY id"),
		orders: await store("SELECT id, status, version FROM orders WHERE organization_id = ? ORDER BY id"),
		endpoints: await store("SELECT id, url, status, version FROM webhook_endpoints WHERE organization_id = ? ORDER BY id"),
		deliveries: await store("SELECT id, status, attempts FROM webhook_deliveries WHERE organization_id = ? ORDER BY id"),
		memberships: await q("SELECT user_id, role, deleted_at FROM memberships WHERE organization_id = ? ORDER BY id"),
		invitations: await q("SELECT id, status FROM invitations WHERE organization_id = ? ORDER BY id"),
		apiKeys: await q("SELECT id, name, hash, permissions, rate_limit_per_minute, revoked_at FROM api_keys WHERE organization_id = ? ORDER BY id"),
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

describe("each tenant's data is in its own store", () => {
	it("B's rows are in B's store, and nothing of B is in A's store (every table, every column)", async () => {
		/** Per data table of the store: rows of its own organization, rows of any other, and rows mentioning `secret`. */
		const census = (orgId: string, secret: string) =>
			runInDurableObject(storeOf(orgId), (_obj, state) => {
				const sql = state.storage.sql;
				const out: Record<string, { own: number; foreign: number; mentions: number }> = {};
				for (const table of TenantStoreObject.DATA_TABLES) {
					const cols = sql.exec<{ name: string }>(`SELECT name FROM pragma_table_info('${table}')`).toArray().map((c) => c.name);
					const mention = cols.map((c) => `instr(lower(CAST("${c}" AS TEXT)), lower(?)) > 0`).join(" OR ");
					out[table] = {
						own: sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table} WHERE organization_id IS ?`, orgId).one().n,
						foreign: sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table} WHERE organization_id IS NOT ?`, orgId).one().n,
						mentions: sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table} WHERE ${mention}`, ...cols.map(() => secret)).one().n,
					};
				}
				return out;
			});
		const inA = await census(A.orgId, B.secret);
		for (const [table, c] of Object.entries(inA)) {
			expect(c.foreign, `A's store, ${table}: rows of another organization`).toBe(0);
			expect(c.mentions, `A's store, ${table}: rows mentioning B's marker`).toBe(0);
		}
		const inB = await census(B.orgId, B.secret);
		for (const table of ["categories", "products", "variants", "orders", "order_items", "webhook_endpoints", "webhook_deliveries", "audit_logs"]) {
			expect(inB[table]?.own, `B's store, ${table}`).toBeGreaterThan(0);
		}
		for (const [table, c] of Object.entries(inB)) expect(c.foreign, `B's store, ${table}: rows of another organization`).toBe(0);
		// The census finds the marker where it is: B's own rows carry it.
		for (const table of ["categories", "products", "variants", "orders", "webhook_endpoints"]) expect(inB[table]?.mentions, `B's store, ${table}`).toBeGreaterThan(0);
		// The shared D1 tables hold none of either tenant's data any more.
		for (const table of ["categories", "products", "variants", "orders", "webhook_endpoints", "webhook_deliveries", "audit_logs"]) {
			const n = await env.DB.prepare(`SELECT count(*) AS n FROM ${table} WHERE organization_id IN (?, ?)`).bind(A.orgId, B.orgId).first<{ n: number }>();
			expect(n?.n, `D1 ${table}`).toBe(0);
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
