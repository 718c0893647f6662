import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { deletedData, envelope, membershipData, orgData, svixHeaders, userData } from "../helpers/clerk";
import { seedMembership, seedOrg, seedUser, uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { DLQ, deliver, eventRow, messageFor } from "../helpers/queue";
import { type Body, call, get } from "../helpers/request";
import { TEST_OPERATOR } from "../helpers/vars";
import { eventually } from "../helpers/wait";

type Me = Body<"GET /api/me">;
type Events = Body<"GET /api/orgs/:orgId/events">;

const user = (id: string) => env.DB.prepare("SELECT * FROM users WHERE id = ?").bind(id).first<Record<string, unknown>>();
const org = (id: string) => env.DB.prepare("SELECT * FROM organizations WHERE id = ?").bind(id).first<Record<string, unknown>>();
const membership = (orgId: string, userId: string) =>
	env.DB.prepare("SELECT * FROM memberships WHERE organization_id = ? AND user_id = ?")
		.bind(orgId, userId)
		.first<Record<string, unknown>>();

describe("end to end through the real queue", () => {
	it("user.created sent to the webhook route appears in GET /api/me", async () => {
		const userId = uid("user");
		const raw = JSON.stringify(envelope("user.created", userData(userId, { email: "e2e@example.com", first: "Edsger" })));
		const res = await call("POST", "/api/webhooks/clerk", { body: raw, headers: svixHeaders(raw) });
		expect(res.status, res.text).toBe(202);
		const token = await signToken({ userId });
		// Through the real queue: nothing to await, so poll with a deadline.
		const me = await eventually(
			() => get<Me>("/api/me", token),
			(r) => Boolean(r.json?.user?.email),
		);
		expect(me.json.user).toEqual({ id: userId, email: "e2e@example.com", firstName: "Edsger", lastName: "Hopper" });
	});
});

describe("consumer", () => {
	it("stores every event with its outcome and acks it", async () => {
		const userId = uid("user");
		const msg = messageFor(envelope("user.created", userData(userId)));
		const result = await deliver([msg]);
		expect(result.explicitAcks).toEqual(result.ids);
		expect(result.retryMessages).toEqual([]);
		expect(await user(userId)).toMatchObject({ email: `${userId}@example.com`, first_name: "Grace" });
		expect(await eventRow(msg.svixId)).toMatchObject({
			type: "user.created",
			entity_id: userId,
			outcome: "processed",
			attempts: 1,
		});
	});

	it("membership before its organization and user: stored, placeholders filled in later", async () => {
		const orgId = uid("org");
		const userId = uid("user");
		const memId = uid("orgmem");
		const m = await deliver([
			messageFor(envelope("organizationMembership.created", membershipData(memId, orgId, userId, { role: "admin" }))),
		]);
		expect(m.explicitAcks).toHaveLength(1);
		expect(await membership(orgId, userId)).toMatchObject({ id: memId, role: "org:admin", deleted_at: null });
		expect(await org(orgId)).toMatchObject({ name: `Org ${orgId}` });
		expect(await user(userId)).toMatchObject({ first_name: "Pub", source_updated_at: 0 });
		// The membership carries its user's fields as the users row has them (the member list reads them there).
		expect(await membership(orgId, userId)).toMatchObject({ user_first_name: "Pub", user_last_name: "User", user_email: `${userId}@example.com` });
		// The real events arrive afterwards and fill in what the placeholders lacked.
		await deliver([
			messageFor(envelope("organization.created", orgData(orgId, { name: "Acme" }))),
			messageFor(envelope("user.created", userData(userId, { first: "Real" }))),
		]);
		expect(await org(orgId)).toMatchObject({ name: "Acme" });
		expect(await user(userId)).toMatchObject({ first_name: "Real", email: `${userId}@example.com` });
		expect(await membership(orgId, userId)).toMatchObject({ user_first_name: "Real", user_last_name: "Hopper", user_deleted_at: null });
		const res = await get(`/api/orgs/${orgId}/admin-data`, await signToken({ userId }));
		expect(res.status, res.text).toBe(200);
	});

	it("a placeholder user's email comes from public_user_data.identifier only when that is an email (not a phone number or username)", async () => {
		const orgId = uid("org");
		for (const [identifier, email] of [
			["+15555550100", null],
			["grace_hopper", null],
			["grace@example.com", "grace@example.com"],
		] as const) {
			const userId = uid("user");
			const data = membershipData(uid("orgmem"), orgId, userId);
			await deliver([messageFor(envelope("organizationMembership.created", { ...data, public_user_data: { ...data.public_user_data, identifier } }))]);
			expect(await user(userId), identifier).toMatchObject({ email, first_name: "Pub" });
			expect(await membership(orgId, userId), identifier).toMatchObject({ user_email: email });
		}
	});

	it("duplicate delivery changes nothing the second time (separate batches and within one batch)", async () => {
		const userId = uid("user");
		const msg = messageFor(envelope("user.created", userData(userId, { first: "Once" })));
		await deliver([msg]);
		// Meanwhile a newer update lands; a redelivery of the old event must not roll it back.
		await deliver([messageFor(envelope("user.updated", userData(userId, { first: "Newer", updatedAt: 1_800_000_000_000 })))]);
		const again = await deliver([msg, msg]);
		expect(again.explicitAcks).toHaveLength(2);
		expect(await user(userId)).toMatchObject({ first_name: "Newer" });
		expect(await eventRow(msg.svixId)).toMatchObject({ attempts: 1, outcome: "processed" });
	});

	it("updated before created: the older created never overwrites the newer state", async () => {
		const userId = uid("user");
		const created = messageFor(envelope("user.created", userData(userId, { first: "Old", updatedAt: 1_700_000_000_000 })));
		const updated = messageFor(envelope("user.updated", userData(userId, { first: "New", updatedAt: 1_700_000_100_000 })));
		await deliver([updated]);
		await deliver([created]);
		expect(await user(userId)).toMatchObject({ first_name: "New", source_updated_at: 1_700_000_100_000 });
		expect(await eventRow(created.svixId)).toMatchObject({ outcome: "stale" });
		expect(await eventRow(updated.svixId)).toMatchObject({ outcome: "processed" });
		// Same result when both arrive in one batch, in the wrong order.
		const other = uid("user");
		await deliver([
			messageFor(envelope("user.updated", userData(other, { first: "New", updatedAt: 1_700_000_100_000 }))),
			messageFor(envelope("user.created", userData(other, { first: "Old" }))),
		]);
		expect(await user(other)).toMatchObject({ first_name: "New" });
	});

	it("deleted then a late updated: stays deleted (user and membership)", async () => {
		const userId = uid("user");
		await deliver([messageFor(envelope("user.created", userData(userId)))]);
		await deliver([messageFor(envelope("user.deleted", deletedData(userId, "user"), 1_750_000_000_000))]);
		const late = messageFor(envelope("user.updated", userData(userId, { first: "Zombie", updatedAt: 1_700_000_050_000 })));
		await deliver([late]);
		// Deleted and scrubbed (issue 15, privacy): the late update writes nothing back.
		expect(await user(userId)).toMatchObject({ deleted_at: 1_750_000_000_000, first_name: null });
		expect(await eventRow(late.svixId)).toMatchObject({ outcome: "stale" });
		expect((await get("/api/me", await signToken({ userId }))).status).toBe(401);

		const orgId = await seedOrg();
		const memberId = await seedUser();
		const memId = uid("orgmem");
		await deliver([
			messageFor(
				envelope("organizationMembership.created", membershipData(memId, orgId, memberId, { updatedAt: 1_700_000_000_000 })),
			),
		]);
		const token = await signToken({ userId: memberId });
		expect((await get(`/api/orgs/${orgId}`, token)).status).toBe(200);
		await deliver([
			messageFor(
				envelope(
					"organizationMembership.deleted",
					membershipData(memId, orgId, memberId, { updatedAt: 1_700_000_000_000 }),
					1_760_000_000_000,
				),
			),
		]);
		await deliver([
			messageFor(
				envelope(
					"organizationMembership.updated",
					membershipData(memId, orgId, memberId, { role: "org:admin", updatedAt: 1_700_000_500_000 }),
				),
			),
		]);
		expect(await membership(orgId, memberId)).toMatchObject({ role: "org:member", deleted_at: 1_760_000_000_000 });
		const denied = await get(`/api/orgs/${orgId}`, token);
		expect(denied.status, denied.text).toBe(403);
	});

	it("a D1 error for one message mid-batch retries only that message, with backoff, and loses nothing", async () => {
		const good1 = uid("user");
		const poison = uid("user_poison");
		const good2 = uid("user");
		await env.DB.exec(
			`CREATE TRIGGER fail_${poison} BEFORE INSERT ON users WHEN NEW.id = '${poison}' BEGIN SELECT RAISE(ABORT, 'injected failure'); END;`,
		);
		const msgs = [good1, poison, good2].map((id) => messageFor(envelope("user.created", userData(id))));
		const first = await deliver(msgs);
		expect(first.explicitAcks.sort()).toEqual([first.ids[0], first.ids[2]].sort());
		expect(first.retryMessages.map((r: { msgId: string }) => r.msgId)).toEqual([first.ids[1]]);
		expect(first.delays).toEqual({ [first.ids[1]!]: 2 });
		expect(await user(good1)).not.toBeNull();
		expect(await user(good2)).not.toBeNull();
		expect(await user(poison)).toBeNull();

		// Still failing on the 3rd attempt: the delay grows.
		const third = await deliver([msgs[1]!], { attempts: 3 });
		expect(third.retryMessages.map((r: { msgId: string }) => r.msgId)).toEqual([third.ids[0]]);
		expect(third.delays).toEqual({ [third.ids[0]!]: 8 });

		await env.DB.exec(`DROP TRIGGER fail_${poison};`);
		const retried = await deliver([msgs[1]!], { attempts: 4 });
		expect(retried.explicitAcks).toEqual(retried.ids);
		expect(await user(poison)).toMatchObject({ email: `${poison}@example.com` });
	});

	it("stores and acks event types it does not act on", async () => {
		const msg = messageFor(envelope("session.created", { id: uid("sess"), object: "session", user_id: "user_x" }));
		const result = await deliver([msg]);
		expect(result.explicitAcks).toHaveLength(1);
		expect(await eventRow(msg.svixId)).toMatchObject({ type: "session.created", outcome: "ignored" });
	});

	it("mirrors custom roles with their permissions; role keys in both forms", async () => {
		const roleId = uid("role");
		const key = `org:${uid("editor").toLowerCase()}`;
		await deliver([
			messageFor(
				envelope("role.created", {
					id: roleId,
					object: "role",
					key,
					name: "Editor",
					description: "Edits things",
					permissions: [
						{ id: uid("perm"), key: "org:members:read", name: "Read members", object: "permission" },
						{ id: uid("perm"), key: "org:posts:edit", name: "Edit posts", object: "permission" },
					],
					created_at: 1_700_000_000_000,
					updated_at: 1_700_000_000_000,
				}),
			),
		]);
		const orgId = await seedOrg();
		const editor = await seedUser();
		await seedMembership(orgId, editor, key);
		const me = await get<Me>("/api/me", await signToken({ userId: editor, orgId, role: key }));
		expect(me.json.organization?.permissions.sort()).toEqual(["org:members:read", "org:posts:edit"]);
		expect((await get(`/api/orgs/${orgId}/members`, await signToken({ userId: editor }))).status).toBe(200);
		// Legacy role keys in membership payloads are stored normalised.
		const legacy = uid("user");
		await deliver([
			messageFor(
				envelope("organizationMembership.created", membershipData(uid("orgmem"), orgId, legacy, { role: "basic_member" })),
			),
		]);
		expect(await membership(orgId, legacy)).toMatchObject({ role: "org:member" });
	});

	it("invitations are tracked through created → accepted", async () => {
		const orgId = await seedOrg();
		const invId = uid("orginv");
		const inv = (status: string, updatedAt: number) => ({
			id: invId,
			object: "organization_invitation",
			email_address: "new@example.com",
			organization_id: orgId,
			role: "org:member",
			status,
			expires_at: 1_700_002_592_000,
			created_at: 1_700_000_000_000,
			updated_at: updatedAt,
		});
		await deliver([messageFor(envelope("organizationInvitation.created", inv("pending", 1_700_000_000_000)))]);
		const row = () => env.DB.prepare("SELECT status, expires_at FROM invitations WHERE id = ?").bind(invId).first();
		expect(await row()).toEqual({ status: "pending", expires_at: 1_700_002_592_000 });
		await deliver([messageFor(envelope("organizationInvitation.accepted", inv("accepted", 1_700_000_001_000)))]);
		expect(await row()).toEqual({ status: "accepted", expires_at: 1_700_002_592_000 });
	});
});

describe("data region from the organization's public_metadata.dataRegion", () => {
	type Org = Body<"GET /api/admin/orgs/:orgId">;
	const operatorView = async (orgId: string) => get<Org>(`/api/admin/orgs/${orgId}`, await signToken({ userId: TEST_OPERATOR }));
	const created = (orgId: string, publicMetadata?: Record<string, unknown>, updatedAt?: number) =>
		messageFor(envelope("organization.created", orgData(orgId, { publicMetadata, updatedAt })));

	it('organization.created with dataRegion "eu", sent to the webhook route: the operator view says "eu"', async () => {
		const orgId = uid("org");
		const raw = JSON.stringify(envelope("organization.created", orgData(orgId, { publicMetadata: { dataRegion: "eu" } })));
		const res = await call("POST", "/api/webhooks/clerk", { body: raw, headers: svixHeaders(raw) });
		expect(res.status, res.text).toBe(202);
		const org = await eventually(
			() => operatorView(orgId),
			(r) => r.status === 200,
		);
		expect(org.json, org.text).toMatchObject({ id: orgId, dataRegion: "eu" });
	});

	it('"default" when absent, explicit, or not a region (that event still applies, with a warning logged)', async () => {
		const [absent, explicit, unknown, notText] = [uid("org"), uid("org"), uid("org"), uid("org")];
		const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
		const bad = [created(unknown, { dataRegion: "us" }), created(notText, { dataRegion: 1 })];
		const result = await deliver([created(absent), created(explicit, { dataRegion: "default" }), ...bad], { env: { LOG_LEVEL: "warn" } });
		expect(result.explicitAcks).toHaveLength(4);
		for (const orgId of [absent, explicit, unknown, notText]) {
			expect((await operatorView(orgId)).json, orgId).toMatchObject({ id: orgId, dataRegion: "default" });
		}
		for (const m of bad) expect(await eventRow(m.svixId)).toMatchObject({ outcome: "processed", error: null });
		// One warning per event with a bad region, none for the others.
		const warnings = warn.mock.calls.map(([line]) => JSON.parse(String(line)) as Record<string, unknown>);
		warn.mockRestore();
		expect(warnings, JSON.stringify(warnings)).toEqual(
			bad.map((m) => expect.objectContaining({ level: "warn", msg: "unknown dataRegion: default", svixId: m.svixId })),
		);
	});

	it("a later organization.updated never moves the region, whatever its metadata says", async () => {
		const orgId = uid("org");
		await deliver([created(orgId, { dataRegion: "eu" })]);
		const updated = messageFor(
			envelope("organization.updated", orgData(orgId, { name: "Renamed", publicMetadata: { dataRegion: "default" }, updatedAt: 1_700_000_100_000 })),
		);
		await deliver([updated]);
		expect(await eventRow(updated.svixId)).toMatchObject({ outcome: "processed" });
		expect((await operatorView(orgId)).json).toMatchObject({ name: "Renamed", dataRegion: "eu" });
		// Nor the other way round.
		const other = uid("org");
		await deliver([created(other)]);
		await deliver([messageFor(envelope("organization.updated", orgData(other, { publicMetadata: { dataRegion: "eu" }, updatedAt: 1_700_000_100_000 })))]);
		expect((await operatorView(other)).json).toMatchObject({ dataRegion: "default" });
	});

	it("the first event that creates the row sets it: an organization.updated before its created, or a membership", async () => {
		const orgId = uid("org");
		await deliver([messageFor(envelope("organization.updated", orgData(orgId, { publicMetadata: { dataRegion: "eu" }, updatedAt: 1_700_000_100_000 })))]);
		const late = created(orgId, {}, 1_700_000_000_000);
		await deliver([late]);
		expect(await eventRow(late.svixId)).toMatchObject({ outcome: "stale" });
		expect((await operatorView(orgId)).json).toMatchObject({ dataRegion: "eu" });
		// Clerk embeds the organization, public_metadata included, in membership events.
		const viaMember = uid("org");
		const m = membershipData(uid("orgmem"), viaMember, uid("user"));
		await deliver([
			messageFor(envelope("organizationMembership.created", { ...m, organization: orgData(viaMember, { publicMetadata: { dataRegion: "eu" } }) })),
		]);
		expect((await operatorView(viaMember)).json).toMatchObject({ dataRegion: "eu" });
		// Its organization.created, arriving afterwards, does not move it either.
		await deliver([created(viaMember)]);
		expect((await operatorView(viaMember)).json).toMatchObject({ dataRegion: "eu" });
	});

	it("a row a session token created first takes the region of the organization's first Clerk event, while the tenant has no data", async () => {
		// A member's token reaches the API before Clerk's organization.created: the directory row is a placeholder.
		const early = async () => {
			const orgId = uid("org");
			const token = await signToken({ userId: await seedUser(), orgId, role: "org:admin" });
			expect((await get(`/api/orgs/${orgId}`, token)).status).toBe(200);
			expect((await operatorView(orgId)).json).toMatchObject({ dataRegion: "default", hasData: false });
			return { orgId, token };
		};
		const empty = await early();
		await deliver([created(empty.orgId, { dataRegion: "eu" })]);
		expect((await operatorView(empty.orgId)).json).toMatchObject({ dataRegion: "eu" });
		// The tenant is served from its EU store from then on.
		const product = { name: "Tea", sku: uid("SKU"), priceMinor: 100, currency: "EUR" };
		const made = await call("POST", `/api/orgs/${empty.orgId}/products`, { token: empty.token, body: product });
		expect(made.status, made.text).toBe(201);
		expect((await get(`/api/orgs/${empty.orgId}/products`, empty.token)).json).toMatchObject({ data: [expect.objectContaining({ sku: product.sku })] });

		// A tenant that already has data in its default store keeps it there (logged), as an operator's PATCH would answer 409.
		const busy = await early();
		expect((await call("POST", `/api/orgs/${busy.orgId}/products`, { token: busy.token, body: { ...product, sku: uid("SKU") } })).status).toBe(201);
		const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
		await deliver([created(busy.orgId, { dataRegion: "eu" })], { env: { LOG_LEVEL: "warn" } });
		const lines = warn.mock.calls.map(([line]) => JSON.parse(String(line)) as Record<string, unknown>);
		warn.mockRestore();
		expect(lines).toContainEqual(expect.objectContaining({ msg: expect.stringContaining("dataRegion eu not applied"), orgId: busy.orgId }));
		expect((await operatorView(busy.orgId)).json).toMatchObject({ dataRegion: "default", hasData: true });
		expect((await get(`/api/orgs/${busy.orgId}/products`, busy.token)).json).toMatchObject({ data: [expect.any(Object)] });
	});
});

describe("dead letters, events listing and replay", () => {
	it("a dead-lettered event is recorded as failed, listed for admins, and replayable by an operator", async () => {
		const orgId = await seedOrg();
		const admin = await seedUser();
		await seedMembership(orgId, admin, "org:admin");
		const msg = messageFor(envelope("organization.updated", orgData(orgId, { name: "Renamed", updatedAt: 1_800_000_000_000 })));
		const dlq = await deliver([msg], { queue: DLQ, attempts: 6 });
		expect(dlq.explicitAcks).toHaveLength(1);
		expect(await eventRow(msg.svixId)).toMatchObject({ outcome: "failed", organization_id: orgId, attempts: 6 });

		const adminToken = await signToken({ userId: admin });
		const listed = await get<Events>(`/api/orgs/${orgId}/events?type=organization.updated`, adminToken);
		expect(listed.status, listed.text).toBe(200);
		expect(listed.json.data).toEqual([
			{
				svixId: msg.svixId,
				type: "organization.updated",
				entityId: orgId,
				receivedAt: msg.receivedAt,
				processedAt: null,
				outcome: "failed",
			},
		]);
		expect(listed.json.nextCursor).toBeNull();

		// Only operators may replay.
		expect((await call("POST", `/api/admin/events/${msg.svixId}/replay`, { token: adminToken })).status).toBe(403);
		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send").mockResolvedValue(undefined as never);
		const operator = await signToken({ userId: TEST_OPERATOR });
		expect((await call("POST", "/api/admin/events/msg_unknown/replay", { token: operator })).status).toBe(404);
		const replay = await call("POST", `/api/admin/events/${msg.svixId}/replay`, { token: operator });
		expect(replay.status, replay.text).toBe(202);
		expect(send).toHaveBeenCalledTimes(1);
		const requeued = send.mock.calls[0]![0] as ReturnType<typeof messageFor> & { replay: boolean };
		expect(requeued).toMatchObject({ svixId: msg.svixId, replay: true, body: msg.body });

		// The consumer then applies it, although the svix id was already recorded.
		const applied = await deliver([requeued]);
		expect(applied.explicitAcks).toHaveLength(1);
		expect(await org(orgId)).toMatchObject({ name: "Renamed" });
		expect(await eventRow(msg.svixId)).toMatchObject({ outcome: "processed" });
	});

	it("a replay the consumer processes before the replay request returns stays processed; one the queue refuses keeps its outcome (503)", async () => {
		const orgId = await seedOrg();
		const msg = messageFor(envelope("organization.updated", orgData(orgId, { name: "Fast", updatedAt: 1_800_000_000_000 })));
		await deliver([msg], { queue: DLQ, attempts: 6 });
		expect(await eventRow(msg.svixId)).toMatchObject({ outcome: "failed" });
		const operator = await signToken({ userId: TEST_OPERATOR });
		// A consumer as fast as can be: the message is applied while send() is still under way.
		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send").mockImplementation(async (body) => {
			await deliver([body as ReturnType<typeof messageFor>]);
			return undefined as never;
		});
		const replay = await call("POST", `/api/admin/events/${msg.svixId}/replay`, { token: operator });
		expect(replay.status, replay.text).toBe(202);
		expect(send).toHaveBeenCalledTimes(1);
		expect(await eventRow(msg.svixId)).toMatchObject({ outcome: "processed" });

		const again = messageFor(envelope("organization.updated", orgData(orgId, { name: "Refused", updatedAt: 1_800_000_000_001 })));
		await deliver([again], { queue: DLQ, attempts: 6 });
		send.mockRejectedValue(new Error("queue unavailable"));
		const refused = await call("POST", `/api/admin/events/${again.svixId}/replay`, { token: operator });
		expect(refused.status, refused.text).toBe(503);
		expect(await eventRow(again.svixId)).toMatchObject({ outcome: "failed" });
	});

	it("events are visible to the organization's admins only, newest first, paginated", async () => {
		const orgId = await seedOrg();
		const admin = await seedUser();
		const member = await seedUser();
		await seedMembership(orgId, admin, "org:admin");
		await seedMembership(orgId, member);
		// Distinct arrival times without sleeping: each message says when it was received.
		const receivedAt = Date.now();
		for (let i = 0; i < 3; i++) {
			const msg = messageFor(envelope("organization.updated", orgData(orgId, { updatedAt: 1_700_000_000_000 + i })));
			await deliver([{ ...msg, receivedAt: receivedAt + i }]);
		}
		const token = await signToken({ userId: admin });
		const p1 = await get<Events>(`/api/orgs/${orgId}/events?limit=2`, token);
		expect(p1.json.data).toHaveLength(2);
		const p2 = await get<Events>(`/api/orgs/${orgId}/events?limit=2&cursor=${p1.json.nextCursor}`, token);
		expect(p2.json.data).toHaveLength(1);
		expect(p2.json.nextCursor).toBeNull();
		const all = [...p1.json.data, ...p2.json.data].map((e) => e.receivedAt);
		expect(all).toEqual([...all].sort((a, b) => b - a));
		expect(all).toEqual([receivedAt + 2, receivedAt + 1, receivedAt]);
		expect((await get(`/api/orgs/${orgId}/events`, await signToken({ userId: member }))).status).toBe(403);
	});
});
