import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import type { AuditMessage } from "../../src/queue/tenant-events";
import { fakeClerkApi } from "../helpers/clerk-api";
import { seedMembership, seedOrg, seedUser, uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { stubNetwork } from "../helpers/network";
import { type Body, call, callWithEnv, get, type Problem } from "../helpers/request";
import { captureTenantEvents } from "../helpers/tenant-queue";
import { seedRole, seedTenant, systemRolePermissions } from "../helpers/tenant";

type MyOrgs = Body<"GET /api/me/organizations">;
type Invitation = Body<"POST /api/orgs/:orgId/invitations">;
type Invitations = Body<"GET /api/orgs/:orgId/invitations">;
type Member = Body<"PATCH /api/orgs/:orgId/members/:userId">;

/** Clerk's Backend API stubbed with its documented answers; returns what the Worker sent. */
function clerk() {
	const fake = fakeClerkApi();
	stubNetwork(vi, { routes: fake.routes });
	return fake.state;
}

const audits = (sent: { kind: string }[]) => sent.filter((m): m is AuditMessage => m.kind === "audit");

async function seedInvitation(orgId: string, status = "pending", email = `${uid("inv")}@example.com`) {
	const id = uid("orginv");
	const now = Date.now();
	await env.DB.prepare(
		"INSERT INTO invitations (id, organization_id, email, role, status, source_updated_at, created_at, updated_at) VALUES (?, ?, ?, 'org:member', ?, 1, ?, ?)",
	)
		.bind(id, orgId, email, status, now, now)
		.run();
	return id;
}

const membershipRow = (orgId: string, userId: string) =>
	env.DB.prepare("SELECT role, deleted_at FROM memberships WHERE organization_id = ? AND user_id = ?")
		.bind(orgId, userId)
		.first<{ role: string; deleted_at: number | null }>();

describe("GET /api/me/organizations", () => {
	it("lists every organization the caller belongs to with their role, paginated, without deleted ones", async () => {
		const user = await seedUser();
		const orgs = [await seedOrg(), await seedOrg(), await seedOrg()];
		await seedMembership(orgs[0] as string, user, "org:admin");
		await seedMembership(orgs[1] as string, user, "org:member");
		await seedMembership(orgs[2] as string, user, "org:member");
		// Not listed: a deleted organization and a removed membership.
		const gone = await seedOrg();
		await seedMembership(gone, user);
		await env.DB.prepare("UPDATE organizations SET deleted_at = 1 WHERE id = ?").bind(gone).run();
		const left = await seedOrg();
		await seedMembership(left, user);
		await env.DB.prepare("UPDATE memberships SET deleted_at = 1 WHERE organization_id = ?").bind(left).run();
		// Someone else's organization.
		await seedMembership(await seedOrg(), await seedUser());

		const token = await signToken({ userId: user });
		const first = await get<MyOrgs>("/api/me/organizations?limit=2", token);
		expect(first.status, first.text).toBe(200);
		expect(first.json.data).toEqual([
			{ id: orgs[0], slug: (orgs[0] as string).toLowerCase(), name: `Org ${orgs[0]}`, role: "org:admin" },
			{ id: orgs[1], slug: (orgs[1] as string).toLowerCase(), name: `Org ${orgs[1]}`, role: "org:member" },
		]);
		expect(first.json.nextCursor).toEqual(expect.any(String));
		const second = await get<MyOrgs>(`/api/me/organizations?limit=2&cursor=${first.json.nextCursor}`, token);
		expect(second.json.data.map((o) => o.id)).toEqual([orgs[2]]);
		expect(second.json.nextCursor).toBeNull();
	});

	it("401 without a token; an empty list for a user with no organization", async () => {
		expect((await get("/api/me/organizations")).status).toBe(401);
		const res = await get<MyOrgs>("/api/me/organizations", await signToken({ userId: await seedUser() }));
		expect(res.json).toEqual({ data: [], nextCursor: null });
	});
});

describe("invitations", () => {
	it("POST creates the invitation in Clerk, answers 201 with it, records it and audits it", async () => {
		const t = await seedTenant({ plan: "pro" });
		const calls = clerk();
		const sent = captureTenantEvents(vi);
		const res = await call<Invitation>("POST", `${t.base}/invitations`, {
			token: t.admin.token,
			body: { emailAddress: "new.person@example.com", role: "org:member" },
		});
		expect(res.status, res.text).toBe(201);
		expect(res.json).toMatchObject({ emailAddress: "new.person@example.com", role: "org:member", status: "pending" });
		expect(res.json.id).toMatch(/^orginv_/);
		expect(calls.calls).toEqual([
			{
				method: "POST",
				path: `/organizations/${t.orgId}/invitations`,
				auth: "Bearer sk_test_clerk_backend",
				body: { email_address: "new.person@example.com", role: "org:member", inviter_user_id: t.admin.id },
			},
		]);
		const list = await get<Invitations>(`${t.base}/invitations?status=pending`, t.admin.token);
		expect(list.status, list.text).toBe(200);
		expect(list.json.data).toEqual([res.json]);
		expect(audits(sent)).toEqual([
			expect.objectContaining({
				organizationId: t.orgId,
				actorId: t.admin.id,
				action: "invitation.created",
				targetType: "invitation",
				targetId: res.json.id,
			}),
		]);
	});

	it("GET lists newest first with a status filter and a cursor", async () => {
		const t = await seedTenant();
		const a = await seedInvitation(t.orgId, "pending");
		const b = await seedInvitation(t.orgId, "accepted");
		await env.DB.prepare("UPDATE invitations SET created_at = created_at + 10 WHERE id = ?").bind(b).run();
		await seedInvitation(await seedOrg(), "pending");
		const all = await get<Invitations>(`${t.base}/invitations?limit=1`, t.admin.token);
		expect(all.json.data.map((i) => i.id)).toEqual([b]);
		const next = await get<Invitations>(`${t.base}/invitations?limit=1&cursor=${all.json.nextCursor}`, t.admin.token);
		expect(next.json.data.map((i) => i.id)).toEqual([a]);
		expect(next.json.nextCursor).toBeNull();
		const pending = await get<Invitations>(`${t.base}/invitations?status=pending`, t.admin.token);
		expect(pending.json.data.map((i) => [i.id, i.status])).toEqual([[a, "pending"]]);
	});

	it("a member without org:members:manage cannot invite (403) and Clerk is not called", async () => {
		const t = await seedTenant();
		const calls = clerk();
		const res = await call<Problem>("POST", `${t.base}/invitations`, {
			token: t.member.token,
			body: { emailAddress: "x@example.com", role: "org:member" },
		});
		expect(res.status, res.text).toBe(403);
		expect(res.json.detail).toContain("org:members:manage");
		expect(calls.calls).toEqual([]);
	});

	it("a custom role with org:members:manage may invite; Clerk gets no inviter (it must be an admin there)", async () => {
		// It grants only what it holds itself: org:member's permissions (security.review.test.ts).
		const memberPerms = await systemRolePermissions("org:member");
		const t = await seedTenant({ plan: "pro", members: { admin: "org:admin", manager: { permissions: ["org:members:manage", ...memberPerms] } } });
		const calls = clerk();
		const res = await call("POST", `${t.base}/invitations`, {
			token: t.manager.token,
			body: { emailAddress: "y@example.com", role: "org:member" },
		});
		expect(res.status, res.text).toBe(201);
		expect(calls.calls[0]?.body).toEqual({ email_address: "y@example.com", role: "org:member" });
	});

	it("DELETE revokes a pending invitation in Clerk (200 with it), records and audits it", async () => {
		const t = await seedTenant();
		const id = await seedInvitation(t.orgId);
		const calls = clerk();
		const sent = captureTenantEvents(vi);
		const res = await call<Invitation>("DELETE", `${t.base}/invitations/${id}`, { token: t.admin.token });
		expect(res.status, res.text).toBe(200);
		expect(res.json).toMatchObject({ id, status: "revoked" });
		expect(calls.calls).toEqual([
			{
				method: "POST",
				path: `/organizations/${t.orgId}/invitations/${id}/revoke`,
				auth: "Bearer sk_test_clerk_backend",
				body: { requesting_user_id: t.admin.id },
			},
		]);
		const row = await env.DB.prepare("SELECT status FROM invitations WHERE id = ?").bind(id).first();
		expect(row).toEqual({ status: "revoked" });
		expect(audits(sent).map((a) => [a.action, a.targetId])).toEqual([["invitation.revoked", id]]);
		// Revoked is final: again is a conflict, and Clerk is not asked.
		const again = await call("DELETE", `${t.base}/invitations/${id}`, { token: t.admin.token });
		expect(again.status, again.text).toBe(409);
		expect(calls.calls).toHaveLength(1);
	});

	it("another organization's invitation id or an unknown one: 404, Clerk not called", async () => {
		const t = await seedTenant();
		const other = await seedInvitation(await seedOrg());
		const calls = clerk();
		expect((await call("DELETE", `${t.base}/invitations/${other}`, { token: t.admin.token })).status).toBe(404);
		expect((await call("DELETE", `${t.base}/invitations/orginv_nope`, { token: t.admin.token })).status).toBe(404);
		expect(calls.calls).toEqual([]);
	});

	it("rejects a bad email, an unknown role and unknown fields with 400", async () => {
		const t = await seedTenant();
		clerk();
		for (const body of [
			{ emailAddress: "not-an-email", role: "org:member" },
			{ emailAddress: "a@example.com", role: "org:nope" },
			{ emailAddress: "a@example.com", role: "org:member", extra: 1 },
		]) {
			const res = await call("POST", `${t.base}/invitations`, { token: t.admin.token, body });
			expect(res.status, `${JSON.stringify(body)} ${res.text}`).toBe(400);
		}
	});

	it("a custom role is only assignable on a plan that includes custom roles (402 naming it)", async () => {
		const role = await seedRole(["org:products:read"]);
		const free = await seedTenant();
		clerk();
		const res = await call<Problem>("POST", `${free.base}/invitations`, {
			token: free.admin.token,
			body: { emailAddress: "c@example.com", role },
		});
		expect(res.status, res.text).toBe(402);
		expect(res.json.detail).toContain("pro");
		const pro = await seedTenant({ plan: "pro" });
		const ok = await call("POST", `${pro.base}/invitations`, { token: pro.admin.token, body: { emailAddress: "c@example.com", role } });
		expect(ok.status, ok.text).toBe(201);
	});

	it("Clerk's refusals: a duplicate is 409, an outage 503 with Retry-After; without CLERK_SECRET_KEY 500", async () => {
		const t = await seedTenant();
		const calls = clerk();
		const body = { emailAddress: "dup@example.com", role: "org:member" };
		calls.fail = { status: 400, code: "duplicate_record" };
		expect((await call("POST", `${t.base}/invitations`, { token: t.admin.token, body })).status).toBe(409);
		calls.fail = { status: 502, code: "internal" };
		const down = await call<Problem>("POST", `${t.base}/invitations`, { token: t.admin.token, body });
		expect(down.status, down.text).toBe(503);
		expect(down.headers.get("retry-after")).toBe("5");
		// Nothing was recorded for refused invitations.
		const rows = await env.DB.prepare("SELECT count(*) AS n FROM invitations WHERE organization_id = ?").bind(t.orgId).first();
		expect(rows).toEqual({ n: 0 });
		const unset = await callWithEnv<Problem>({ CLERK_SECRET_KEY: "" }, "POST", `${t.base}/invitations`, {
			token: t.admin.token,
			body,
		});
		expect(unset.status, unset.text).toBe(500);
		expect(unset.json).toMatchObject({ code: "BAD_ENVIRONMENT" });
		expect(unset.json.detail).toContain("CLERK_SECRET_KEY");
		expect(unset.text).not.toContain("sk_test");
	});
});

describe("members: role changes and removal", () => {
	it("PATCH changes the role in Clerk, answers with Clerk's membership, records and audits it", async () => {
		const t = await seedTenant();
		const calls = clerk();
		const sent = captureTenantEvents(vi);
		const res = await call<Member>("PATCH", `${t.base}/members/${t.member.id}`, {
			token: t.admin.token,
			body: { role: "org:admin" },
		});
		expect(res.status, res.text).toBe(200);
		expect(res.json).toMatchObject({ userId: t.member.id, role: "org:admin", email: `${t.member.id}@example.com` });
		expect(calls.calls).toEqual([
			{
				method: "PATCH",
				path: `/organizations/${t.orgId}/memberships/${t.member.id}`,
				auth: "Bearer sk_test_clerk_backend",
				body: { role: "org:admin" },
			},
		]);
		expect(await membershipRow(t.orgId, t.member.id)).toEqual({ role: "org:admin", deleted_at: null });
		expect(audits(sent)).toEqual([
			expect.objectContaining({
				action: "member.role_changed",
				actorId: t.admin.id,
				targetId: t.member.id,
				before: { userId: t.member.id, role: "org:member" },
				after: { userId: t.member.id, role: "org:admin" },
			}),
		]);
		// The new admin is one right away (the webhook later confirms it).
		expect((await get(`${t.base}/admin-data`, t.member.token)).status).toBe(200);
	});

	it("demoting the last admin is 409 and Clerk is not called; with a second admin it is allowed", async () => {
		const t = await seedTenant();
		const calls = clerk();
		const res = await call<Problem>("PATCH", `${t.base}/members/${t.admin.id}`, {
			token: t.admin.token,
			body: { role: "org:member" },
		});
		expect(res.status, res.text).toBe(409);
		expect(res.headers.get("content-type")).toBe("application/problem+json");
		expect(res.json.detail).toContain("last admin");
		expect(calls.calls).toEqual([]);

		const two = await seedTenant({ members: { a: "org:admin", b: "org:admin" } });
		const ok = await call("PATCH", `${two.base}/members/${two.b.id}`, { token: two.a.token, body: { role: "org:member" } });
		expect(ok.status, ok.text).toBe(200);
		// Now a is the last admin.
		const last = await call("PATCH", `${two.base}/members/${two.a.id}`, { token: two.a.token, body: { role: "org:member" } });
		expect(last.status, last.text).toBe(409);
	});

	it("an admin whose user was deleted does not count as the other admin", async () => {
		const t = await seedTenant({ members: { a: "org:admin", ghost: "org:admin" } });
		await env.DB.batch([
			env.DB.prepare("UPDATE users SET deleted_at = 1 WHERE id = ?").bind(t.ghost.id),
			env.DB.prepare("UPDATE memberships SET user_deleted_at = 1 WHERE user_id = ?").bind(t.ghost.id),
		]);
		clerk();
		const res = await call("DELETE", `${t.base}/members/${t.a.id}`, { token: t.a.token });
		expect(res.status, res.text).toBe(409);
	});

	it("DELETE removes the member in Clerk (204), records and audits it; the removed member is refused", async () => {
		const t = await seedTenant();
		const calls = clerk();
		const sent = captureTenantEvents(vi);
		expect((await get(t.base, t.member.token)).status).toBe(200);
		// The tenant's store holds the member's access in its mirror.
		expect((await call("GET", `${t.base}/products`, { token: t.member.token })).status).toBe(200);
		const res = await call("DELETE", `${t.base}/members/${t.member.id}`, { token: t.admin.token });
		expect(res.status, res.text).toBe(204);
		// It forgot it at once, before Clerk's membership webhook arrives.
		expect((await call("GET", `${t.base}/products`, { token: t.member.token })).status).toBe(403);
		expect(calls.calls.map((c) => [c.method, c.path])).toEqual([
			["DELETE", `/organizations/${t.orgId}/memberships/${t.member.id}`],
		]);
		expect((await membershipRow(t.orgId, t.member.id))?.deleted_at).toEqual(expect.any(Number));
		expect(audits(sent).map((a) => [a.action, a.targetId, a.before])).toEqual([
			["member.removed", t.member.id, { userId: t.member.id, role: "org:member" }],
		]);
		expect((await get(t.base, t.member.token)).status).toBe(403);
		// Removed already: 404.
		expect((await call("DELETE", `${t.base}/members/${t.member.id}`, { token: t.admin.token })).status).toBe(404);
	});

	it("removing the last admin is 409, also by themselves; a non-member or another org's member is 404", async () => {
		const t = await seedTenant();
		const calls = clerk();
		const res = await call<Problem>("DELETE", `${t.base}/members/${t.admin.id}`, { token: t.admin.token });
		expect(res.status, res.text).toBe(409);
		expect(await membershipRow(t.orgId, t.admin.id)).toEqual({ role: "org:admin", deleted_at: null });
		const other = await seedTenant();
		expect((await call("DELETE", `${t.base}/members/${other.member.id}`, { token: t.admin.token })).status).toBe(404);
		expect(
			(await call("PATCH", `${t.base}/members/user_nope`, { token: t.admin.token, body: { role: "org:member" } })).status,
		).toBe(404);
		expect(calls.calls).toEqual([]);
	});
});

describe("seats", () => {
	/** An organization with `n` members (the first an admin) joined in that order, and their tokens. */
	async function orgWith(n: number, plan = "free") {
		const orgId = await seedOrg();
		await env.DB.prepare("UPDATE organizations SET plan = ? WHERE id = ?").bind(plan, orgId).run();
		const users: { id: string; token: string }[] = [];
		for (let i = 0; i < n; i++) {
			const id = await seedUser();
			await seedMembership(orgId, id, i === 0 ? "org:admin" : "org:member");
			users.push({ id, token: await signToken({ userId: id, expiresIn: 3600 }) });
		}
		return { orgId, base: `/api/orgs/${orgId}`, users };
	}

	it("inviting past the free plan's 5 seats counts pending invitations and answers 402 naming pro", async () => {
		const o = await orgWith(4);
		await seedInvitation(o.orgId);
		// Revoked and accepted invitations hold no seat.
		await seedInvitation(o.orgId, "revoked");
		await seedInvitation(o.orgId, "accepted");
		const calls = clerk();
		const res = await call<Problem>("POST", `${o.base}/invitations`, {
			token: o.users[0]?.token,
			body: { emailAddress: "sixth@example.com", role: "org:member" },
		});
		expect(res.status, res.text).toBe(402);
		expect(res.headers.get("content-type")).toBe("application/problem+json");
		expect(res.json.detail).toContain("free plan has 5 seats");
		expect(res.json.detail).toContain("upgrade to pro");
		expect(calls.calls).toEqual([]);
	});

	it("the fifth seat can be taken by an invitation; the next invitation (not yet synced) is refused", async () => {
		const o = await orgWith(4);
		const calls = clerk();
		const token = o.users[0]?.token;
		const fifth = await call("POST", `${o.base}/invitations`, { token, body: { emailAddress: "e5@example.com" } });
		expect(fifth.status, fifth.text).toBe(201);
		const sixth = await call("POST", `${o.base}/invitations`, { token, body: { emailAddress: "e6@example.com" } });
		expect(sixth.status, sixth.text).toBe(402);
		expect(calls.calls).toHaveLength(1);
	});

	it("an invitation past its expires_at (Clerk sends no webhook then) holds no seat and is listed expired", async () => {
		const o = await orgWith(4);
		const expired = await seedInvitation(o.orgId);
		await env.DB.prepare("UPDATE invitations SET expires_at = ? WHERE id = ?").bind(Date.now() - 1_000, expired).run();
		const open = await seedInvitation(o.orgId);
		await env.DB.prepare("UPDATE invitations SET expires_at = ? WHERE id = ?").bind(Date.now() + 86_400_000, open).run();
		const token = o.users[0]?.token;
		const list = await call<{ data: { id: string; status: string }[] }>("GET", `${o.base}/invitations`, { token });
		expect(Object.fromEntries(list.json.data.map((i) => [i.id, i.status]))).toMatchObject({ [expired]: "expired", [open]: "pending" });
		const pending = await call<{ data: { id: string }[] }>("GET", `${o.base}/invitations?status=pending`, { token });
		expect(pending.json.data.map((i) => i.id)).toEqual([open]);
		const onlyExpired = await call<{ data: { id: string }[] }>("GET", `${o.base}/invitations?status=expired`, { token });
		expect(onlyExpired.json.data.map((i) => i.id)).toEqual([expired]);
		// 4 members and 1 open invitation: the free plan's 5 seats are taken; the expired one takes none.
		clerk();
		expect((await call("POST", `${o.base}/invitations`, { token, body: { emailAddress: "e6@example.com" } })).status).toBe(402);
		await env.DB.prepare("UPDATE invitations SET expires_at = ? WHERE id = ?").bind(Date.now() - 1_000, open).run();
		expect((await call("POST", `${o.base}/invitations`, { token, body: { emailAddress: "e7@example.com" } })).status).toBe(201);
		// Revoking it: it is expired, not pending (409), and Clerk is not asked.
		expect((await call("DELETE", `${o.base}/invitations/${expired}`, { token })).status).toBe(409);
	});

	it("a per-organization seat_limit overrides the plan's seats", async () => {
		const o = await orgWith(2, "pro");
		await env.DB.prepare("UPDATE organizations SET seat_limit = 2 WHERE id = ?").bind(o.orgId).run();
		clerk();
		const res = await call<Problem>("POST", `${o.base}/invitations`, {
			token: o.users[0]?.token,
			body: { emailAddress: "z@example.com" },
		});
		expect(res.status, res.text).toBe(402);
		expect(res.json.detail).toContain("2 seats");
		// No plan lifts an override (a plan change keeps it), least of all a cheaper one.
		expect(res.json.detail).not.toContain("upgrade");
		expect(res.json.detail).toContain("contact support");
		// A member past the override is refused alike.
		const third = await seedUser();
		await seedMembership(o.orgId, third);
		const refused = await get<Problem>(o.base, await signToken({ userId: third }));
		expect(refused.status, refused.text).toBe(402);
		expect(refused.json.detail).toContain("3 members but the pro plan has 2 seats");
		expect(refused.json.detail).not.toContain("upgrade");
	});

	it("a free organization with 7 members serves 5 (admins first, then by join order): the 6th and 7th get 402", async () => {
		const o = await orgWith(7);
		// An admin who joined last still takes a seat before the members.
		const lateAdmin = await seedUser();
		await seedMembership(o.orgId, lateAdmin, "org:admin");
		const lateToken = await signToken({ userId: lateAdmin, expiresIn: 3600 });
		const statuses: number[] = [];
		for (const u of o.users) statuses.push((await get(o.base, u.token)).status);
		// 8 members, 5 seats: the 2 admins, then the 3 oldest members.
		expect(statuses).toEqual([200, 200, 200, 200, 402, 402, 402]);
		expect((await get(o.base, lateToken)).status).toBe(200);
		const refused = await get<Problem>(`${o.base}/members`, o.users[6]?.token);
		expect(refused.status).toBe(402);
		expect(refused.headers.get("content-type")).toBe("application/problem+json");
		expect(refused.json.detail).toContain("8 members but the free plan has 5 seats");
		expect(refused.json.detail).toContain("upgrade to pro");

		// The admin removes three members: the five left fit and are all served.
		clerk();
		for (const u of [o.users[1], o.users[2], o.users[3]]) {
			const res = await call("DELETE", `${o.base}/members/${u?.id}`, { token: o.users[0]?.token });
			expect(res.status, res.text).toBe(204);
		}
		for (const u of o.users.slice(4)) expect((await get(o.base, u.token)).status).toBe(200);
	});

	it("the OpenAPI document lists the new routes and the seat 402 on tenant routes", async () => {
		const doc = await get<{ paths: Record<string, Record<string, { responses: Record<string, unknown> }>> }>("/api/openapi.json");
		expect(Object.keys(doc.json.paths)).toEqual(
			expect.arrayContaining([
				"/api/me/organizations",
				"/api/orgs/{orgId}/invitations",
				"/api/orgs/{orgId}/invitations/{invitationId}",
				"/api/orgs/{orgId}/members/{userId}",
			]),
		);
		expect(Object.keys(doc.json.paths["/api/orgs/{orgId}/members/{userId}"] ?? {}).sort()).toEqual(["delete", "patch"]);
		expect(doc.json.paths["/api/orgs/{orgId}"]?.get?.responses).toHaveProperty("402");
	});

	it("the same 7 members are all served on pro", async () => {
		const o = await orgWith(7, "pro");
		for (const u of o.users) expect((await get(o.base, u.token)).status).toBe(200);
	});
});
