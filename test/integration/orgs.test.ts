import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { deletedData, envelope, membershipData, userData } from "../helpers/clerk";
import { seedMembership, seedOrg, seedUser, uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { deliver, messageFor } from "../helpers/queue";
import { type Body, get, type Item, type Problem, type TestResponse } from "../helpers/request";
import { seedRole, seedTenant } from "../helpers/tenant";

type Members = Body<"GET /api/orgs/:orgId/members">;

/** A token whose active organization is `orgId` (claims that D1 membership overrides). */
const tokenFor = (userId: string, orgId: string | null = null, role = "org:member") => signToken({ userId, orgId, role });

describe("GET /api/orgs/:orgId", () => {
	it("a member sees the organization and their role", async () => {
		const t = await seedTenant();
		const res = await get(`/api/orgs/${t.orgId}`, await tokenFor(t.member.id));
		expect(res.status, res.text).toBe(200);
		expect(res.json).toMatchObject({ id: t.orgId, slug: t.orgId.toLowerCase(), role: "org:member", plan: "free" });
	});

	it("404 for an unknown organization, 404 for a deleted one", async () => {
		const userId = await seedUser();
		expect((await get("/api/orgs/org_does_not_exist", await tokenFor(userId))).status).toBe(404);
		const t = await seedTenant();
		await env.DB.prepare("UPDATE organizations SET deleted_at = ? WHERE id = ?").bind(Date.now(), t.orgId).run();
		const res = await get(`/api/orgs/${t.orgId}`, await tokenFor(t.admin.id, t.orgId, "org:admin"));
		expect(res.status, res.text).toBe(404);
		expect(res.headers.get("content-type")).toBe("application/problem+json");
	});

	it("403 for a signed-in user who is not a member", async () => {
		const t = await seedTenant();
		const outsider = await seedUser();
		const res = await get(`/api/orgs/${t.orgId}`, await tokenFor(outsider));
		expect(res.status, res.text).toBe(403);
		expect(res.json).toMatchObject({ status: 403, title: "Forbidden" });
	});

	it("token claims for another organization grant nothing here", async () => {
		const t = await seedTenant();
		const outsider = await seedUser();
		// Claims org:admin — but for a different org than the one requested.
		const token = await signToken({ userId: outsider, orgId: "org_other", role: "org:admin" });
		expect((await get(`/api/orgs/${t.orgId}`, token)).status).toBe(403);
	});

	it("falls back to the token for its own active org before the membership webhook arrives, then stores it", async () => {
		const orgId = uid("org");
		const userId = uid("user");
		const token = await signToken({ userId, orgId, orgSlug: "acme", role: "org:admin", permissions: ["org:reports:read"] });
		const res = await get(`/api/orgs/${orgId}`, token);
		expect(res.status, res.text).toBe(200);
		expect(res.json).toMatchObject({ id: orgId, slug: "acme", role: "org:admin" });
		// The same fields as for a stored membership: no directory column beyond the organization's summary.
		const stored = await get(`/api/orgs/${orgId}`, token);
		expect(Object.keys(res.json as object).sort()).toEqual(Object.keys(stored.json as object).sort());
		expect(Object.keys(res.json as object).sort()).toEqual(["createdAt", "id", "imageUrl", "name", "plan", "role", "slug", "updatedAt"]);
		const row = await env.DB.prepare("SELECT role, source_updated_at FROM memberships WHERE organization_id = ? AND user_id = ?")
			.bind(orgId, userId)
			.first();
		expect(row).toEqual({ role: "org:admin", source_updated_at: 0 });
		const me = await get<Body<"GET /api/me">>("/api/me", token);
		expect(me.json.organization?.permissions).toEqual(expect.arrayContaining(["org:members:read", "org:reports:read"]));
	});

	it("a deleted membership is not revived from token claims", async () => {
		const t = await seedTenant();
		await env.DB.prepare("UPDATE memberships SET deleted_at = ? WHERE organization_id = ? AND user_id = ?")
			.bind(Date.now(), t.orgId, t.member.id)
			.run();
		const res = await get(`/api/orgs/${t.orgId}`, await tokenFor(t.member.id, t.orgId, "org:admin"));
		expect(res.status, res.text).toBe(403);
	});

	it("D1's role wins over the token's role claim", async () => {
		const t = await seedTenant();
		// The token says admin; D1 says member.
		const res = await get(`/api/orgs/${t.orgId}/admin-data`, await tokenFor(t.member.id, t.orgId, "org:admin"));
		expect(res.status, res.text).toBe(403);
	});
});

describe("GET /api/orgs/:orgId/members", () => {
	it("pages through members with a cursor, no duplicates, no gaps", async () => {
		const orgId = await seedOrg();
		const admin = await seedUser();
		await seedMembership(orgId, admin, "org:admin");
		const ids = [admin];
		for (let i = 0; i < 6; i++) {
			const u = await seedUser();
			await seedMembership(orgId, u);
			ids.push(u);
		}
		const token = await tokenFor(admin);
		const seen: string[] = [];
		let cursor: string | null = null;
		let pages = 0;
		do {
			const res: TestResponse<Members> = await get<Members>(`/api/orgs/${orgId}/members?limit=3${cursor ? `&cursor=${cursor}` : ""}`, token);
			expect(res.status, res.text).toBe(200);
			expect(res.json.data.length).toBeLessThanOrEqual(3);
			seen.push(...res.json.data.map((m: Item<"GET /api/orgs/:orgId/members">) => m.userId));
			cursor = res.json.nextCursor;
			pages++;
		} while (cursor && pages < 10);
		expect(pages).toBe(3);
		expect(seen).toEqual(ids);
		const first = (await get<Members>(`/api/orgs/${orgId}/members?limit=1`, token)).json.data[0];
		expect(first).toMatchObject({ userId: admin, role: "org:admin", email: `${admin}@example.com` });
	});

	it("shows each member's email and names as its user has them, in every organization, through the user's events", async () => {
		const a = await seedTenant();
		const b = await seedTenant();
		const userId = uid("user");
		const member = (t: typeof a) =>
			get<Members>(`/api/orgs/${t.orgId}/members`, t.admin.token).then((r) => {
				expect(r.status, r.text).toBe(200);
				return r.json.data.find((m) => m.userId === userId);
			});
		const adminData = async (t: typeof a) => (await get<Body<"GET /api/orgs/:orgId/admin-data">>(`/api/orgs/${t.orgId}/admin-data`, t.admin.token)).json;
		// A user not seen yet: the membership event's public_user_data.
		await deliver([messageFor(envelope("organizationMembership.created", membershipData(uid("orgmem"), a.orgId, userId)))]);
		expect(await member(a)).toMatchObject({ email: `${userId}@example.com`, firstName: "Pub", lastName: "User", role: "org:member" });
		// The user's own events win over public_user_data, whatever arrives later, in both organizations.
		const t0 = 1_700_000_000_000;
		await deliver([messageFor(envelope("user.updated", userData(userId, { email: `grace-${userId}@example.com`, updatedAt: t0 + 1_000 })))]);
		await deliver([
			messageFor(envelope("organizationMembership.created", membershipData(uid("orgmem"), b.orgId, userId, { role: "org:admin", updatedAt: t0 + 2_000 }))),
		]);
		for (const t of [a, b]) {
			expect(await member(t)).toMatchObject({ email: `grace-${userId}@example.com`, firstName: "Grace", lastName: "Hopper" });
		}
		expect((await member(b))?.role).toBe("org:admin");
		await deliver([messageFor(envelope("user.updated", userData(userId, { first: "Ada", last: "Lovelace", updatedAt: t0 + 3_000 })))]);
		for (const t of [a, b]) expect(await member(t)).toMatchObject({ email: `${userId}@example.com`, firstName: "Ada", lastName: "Lovelace" });
		// A stale user.updated changes nothing.
		await deliver([messageFor(envelope("user.updated", userData(userId, { first: "Old", updatedAt: t0 + 500 })))]);
		expect(await member(a)).toMatchObject({ firstName: "Ada" });
		expect((await adminData(a)).memberCount).toBe(3);

		// A deleted user leaves the list of every organization, as it leaves the counts.
		await deliver([messageFor(envelope("user.deleted", deletedData(userId, "user"), Date.now()))]);
		for (const t of [a, b]) {
			expect(await member(t)).toBeUndefined();
			expect((await get<Members>(`/api/orgs/${t.orgId}/members`, t.admin.token)).json.data).toHaveLength((await adminData(t)).memberCount);
		}
	});

	it("a membership from token claims shows its already known user", async () => {
		const orgId = uid("org");
		const userId = await seedUser(undefined, { email: "known@example.com", firstName: "Known", lastName: "User" });
		const token = await signToken({ userId, orgId, orgSlug: uid("acme").toLowerCase(), role: "org:admin" });
		const res = await get<Members>(`/api/orgs/${orgId}/members`, token);
		expect(res.status, res.text).toBe(200);
		expect(res.json.data).toEqual([
			expect.objectContaining({ userId, role: "org:admin", email: "known@example.com", firstName: "Known", lastName: "User" }),
		]);
	});

	it("migration 0017 copies the user's fields onto memberships written before it", async () => {
		const t = await seedTenant();
		const [kept, gone] = [await seedUser(undefined, { email: "kept@example.com", firstName: "Kept" }), await seedUser()];
		// Rows as they were before the migration: no copies.
		for (const u of [kept, gone]) {
			await env.DB.prepare(
				"INSERT INTO memberships (id, organization_id, user_id, role, source_updated_at, created_at, updated_at) VALUES (?, ?, ?, 'org:member', 1, ?, ?)",
			)
				.bind(uid("orgmem"), t.orgId, u, Date.now() + 60_000, Date.now() + 60_000)
				.run();
		}
		await env.DB.prepare("UPDATE users SET deleted_at = 1, email = NULL WHERE id = ?").bind(gone).run();
		const migration = env.TEST_MIGRATIONS.find((m) => m.name.startsWith("0017_"));
		const backfill = migration?.queries.find((q) => q.trimStart().startsWith("UPDATE"));
		expect(backfill, "0017's backfill statement").toBeDefined();
		await env.DB.prepare(backfill as string).run();
		const list = (await get<Members>(`/api/orgs/${t.orgId}/members`, t.admin.token)).json.data;
		expect(list.map((m) => m.userId)).toEqual([t.admin.id, t.member.id, kept]);
		expect(list[2]).toMatchObject({ email: "kept@example.com", firstName: "Kept" });
	});

	it("requires org:members:read: a custom role without it gets 403", async () => {
		const orgId = await seedOrg();
		const viewer = await seedUser();
		await seedMembership(orgId, viewer, await seedRole([]));
		const res = await get<Problem>(`/api/orgs/${orgId}/members`, await tokenFor(viewer));
		expect(res.status, res.text).toBe(403);
		expect(res.json.detail).toContain("org:members:read");
	});

	it("rejects a bad cursor and an out-of-range limit with problem+json listing the field", async () => {
		const t = await seedTenant();
		const token = await tokenFor(t.admin.id);
		const bad = await get(`/api/orgs/${t.orgId}/members?cursor=%%%`, token);
		expect(bad.status).toBe(400);
		const limit = await get<Problem>(`/api/orgs/${t.orgId}/members?limit=1000`, token);
		expect(limit.status).toBe(400);
		expect(limit.json.errors).toEqual([expect.objectContaining({ path: "limit" })]);
	});
});

describe("GET /api/orgs/:orgId/admin-data", () => {
	it("org:admin only", async () => {
		const t = await seedTenant();
		const admin = await get(`/api/orgs/${t.orgId}/admin-data`, await tokenFor(t.admin.id));
		expect(admin.status, admin.text).toBe(200);
		expect(admin.json).toEqual({ organizationId: t.orgId, memberCount: 2, admins: 1, pendingInvitations: 0 });
		expect((await get(`/api/orgs/${t.orgId}/admin-data`, await tokenFor(t.member.id))).status).toBe(403);
	});
});

describe("tenant isolation", () => {
	const routes = ["", "/members", "/admin-data", "/events"];

	it.each(routes)("a member (even an admin) of A gets nothing of B on /api/orgs/:orgId%s", async (suffix) => {
		const a = await seedTenant();
		const b = await seedTenant();
		for (const userId of [a.admin.id, a.member.id]) {
			const token = await signToken({ userId, orgId: a.orgId, role: "org:admin", permissions: ["org:members:read"] });
			const res = await get(`/api/orgs/${b.orgId}${suffix}`, token);
			expect(res.status, res.text).toBe(403);
			expect(res.text).not.toContain(b.admin.id);
			expect(res.text).not.toContain(b.member.id);
			expect(res.text).not.toContain(`Org ${b.orgId}`);
		}
		// …while B's own admin does get through.
		const own = await get(`/api/orgs/${b.orgId}${suffix}`, await tokenFor(b.admin.id));
		expect(own.status, own.text).toBe(200);
	});
});
