import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { stubNetwork } from "../helpers/network";
import { call } from "../helpers/request";
import { seedTenant } from "../helpers/tenant";

/**
 * The permission catalogue and, for each permission, a route it gates. A permission in the catalogue
 * that gates nothing fails the first test: gate something with it, or remove it (a migration).
 * Writes are sent an empty body: a holder gets past the guard (400), nothing is written.
 */
const GATES: Record<string, { method: string; path: string }> = {
	"org:members:read": { method: "GET", path: "/members" },
	"org:members:manage": { method: "GET", path: "/invitations" },
	"org:billing:read": { method: "GET", path: "/billing" },
	"org:billing:manage": { method: "GET", path: "/billing/invoices" },
	"org:products:read": { method: "GET", path: "/products" },
	"org:products:write": { method: "POST", path: "/products" },
	"org:orders:read": { method: "GET", path: "/orders" },
	"org:orders:write": { method: "POST", path: "/orders" },
	"org:audit:read": { method: "GET", path: "/audit-logs" },
	"org:usage:read": { method: "GET", path: "/usage" },
	"org:webhooks:manage": { method: "GET", path: "/webhooks" },
	"org:api_keys:manage": { method: "GET", path: "/api-keys" },
};

/**
 * Clerk's system permissions (is_system): Clerk itself enforces them on its own Frontend API
 * (organization profile, memberships, domains); they are mirrored so /api/me reports them.
 */
const CLERK_SYSTEM = [
	"org:sys_domains:manage",
	"org:sys_domains:read",
	"org:sys_memberships:manage",
	"org:sys_memberships:read",
	"org:sys_profile:delete",
	"org:sys_profile:manage",
];

const members = Object.fromEntries([
	["admin", "org:admin"],
	["none", { permissions: [] }],
	...Object.keys(GATES).map((p) => [p, { permissions: [p] }]),
]) as Record<string, string | { permissions: string[] }>;

let t: Awaited<ReturnType<typeof seedTenant<typeof members>>>;
beforeAll(async () => {
	stubNetwork(vi);
	// pro: the webhooks routes need its feature, and one seat per permission.
	t = await seedTenant({ plan: "pro", members });
	vi.restoreAllMocks();
});

const keys = async (system: 0 | 1) =>
	(
		await env.DB.prepare("SELECT key FROM permissions WHERE is_system = ? AND deleted_at IS NULL ORDER BY key")
			.bind(system)
			.all<{ key: string }>()
	).results.map((r) => r.key);

describe("every permission in the catalogue gates something real", () => {
	it("the catalogue is exactly the permissions that gate a route, plus Clerk's system permissions", async () => {
		expect(await keys(0)).toEqual(Object.keys(GATES).sort());
		expect(await keys(1)).toEqual(CLERK_SYSTEM);
	});

	it.each(Object.entries(GATES))("%s gates %o: its holder gets past the guard, a member without it gets 403", async (perm, gate) => {
		const send = (token: string) => call(gate.method, `${t.base}${gate.path}`, { token, ...(gate.method === "POST" ? { body: {} } : {}) });
		const holder = await send(t[perm]!.token);
		expect(holder.status, holder.text).not.toBe(403);
		expect(holder.status, holder.text).toBeLessThan(500);
		const without = await send(t.none!.token);
		expect(without.status, without.text).toBe(403);
		expect(without.json).toMatchObject({ detail: expect.stringContaining(perm) });
	});

	it("admins keep the audit log, the events list and billing management", async () => {
		for (const path of ["/audit-logs", "/audit-logs/verify", "/events", "/billing/invoices"]) {
			const res = await call("GET", `${t.base}${path}`, { token: t.admin!.token });
			expect(res.status, `${path}: ${res.text}`).toBe(200);
		}
	});

	it("an admin whose role lost org:audit:read (a Clerk permission change) still reads the audit log", async () => {
		await env.DB.prepare(
			"DELETE FROM role_permissions WHERE role_id = 'role_system_admin' AND permission_id = (SELECT id FROM permissions WHERE key = 'org:audit:read')",
		).run();
		// A fresh tenant: nothing of the admin's permissions is cached yet.
		const fresh = await seedTenant({ members: { admin: "org:admin", reader: { permissions: ["org:audit:read"] } } });
		const res = await call("GET", `${fresh.base}/audit-logs`, { token: fresh.admin.token });
		expect(res.status, res.text).toBe(200);
	});
});
