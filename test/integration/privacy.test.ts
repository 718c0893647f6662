import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { runScheduled } from "../../src/queue/consumer";
import { EVENT_RETENTION_DAYS } from "../../src/services/retention";
import { deletedData, envelope, membershipData, userData } from "../helpers/clerk";
import { seedOrg, uid } from "../helpers/factories";
import { deliver, eventRow, messageFor } from "../helpers/queue";
import { signToken } from "../helpers/jwt";
import { get, type Problem } from "../helpers/request";
import { captureTenantEvents } from "../helpers/tenant-queue";

const DAY = 24 * 60 * 60 * 1000;

const userRow = (id: string) =>
	env.DB.prepare("SELECT id, email, first_name, last_name, image_url, deleted_at FROM users WHERE id = ?")
		.bind(id)
		.first<Record<string, unknown>>();

describe("user.deleted scrubs personal data", () => {
	it("the users row keeps its id (memberships still refer to it) but loses email, names and image; raw payloads too", async () => {
		const sent = captureTenantEvents(vi);
		const orgId = await seedOrg();
		const userId = uid("user");
		const email = `grace-${userId}@example.com`;
		const created = messageFor(envelope("user.created", userData(userId, { email, first: "Grace", last: "Hopper" })));
		await deliver([created]);
		const memId = uid("orgmem");
		await deliver([messageFor(envelope("organizationMembership.created", membershipData(memId, orgId, userId)))]);
		expect(await userRow(userId)).toMatchObject({ email, first_name: "Grace", last_name: "Hopper" });

		await deliver([messageFor(envelope("user.deleted", deletedData(userId, "user"), Date.now()))]);
		expect(await userRow(userId)).toEqual({
			id: userId,
			email: null,
			first_name: null,
			last_name: null,
			image_url: null,
			deleted_at: expect.any(Number),
		});
		// The membership's copy of the user's fields is scrubbed with it (and the member leaves the member list).
		const membership = () =>
			env.DB.prepare(
				"SELECT user_id, user_email, user_first_name, user_last_name, user_deleted_at FROM memberships WHERE organization_id = ? AND user_id = ?",
			)
				.bind(orgId, userId)
				.first();
		expect(await membership()).toEqual({
			user_id: userId,
			user_email: null,
			user_first_name: null,
			user_last_name: null,
			user_deleted_at: expect.any(Number),
		});
		// The stored raw payload of the user's own event keeps its type and the id only.
		const payload = String((await eventRow(created.svixId))!.payload);
		expect(payload).not.toContain(email);
		expect(payload).not.toContain("Grace");
		expect(JSON.parse(payload)).toMatchObject({ type: "user.created", redacted: true, data: { id: userId } });

		// Late events that carry the user's data write nothing back, and are kept without it.
		const late = messageFor(envelope("user.updated", userData(userId, { email, updatedAt: Date.now() + DAY })));
		await deliver([late]);
		const latePayload = String((await eventRow(late.svixId))!.payload);
		expect(latePayload).not.toContain(email);
		expect(JSON.parse(latePayload)).toMatchObject({ type: "user.updated", redacted: true, data: { id: userId } });
		await deliver([
			messageFor(envelope("organizationMembership.updated", membershipData(memId, orgId, userId, { updatedAt: Date.now() + DAY }))),
		]);
		expect(await userRow(userId)).toMatchObject({ email: null, first_name: null, last_name: null, image_url: null });
		expect(await membership()).toMatchObject({ user_email: null, user_first_name: null, user_last_name: null });

		// A token the user still holds is refused on /api/me with the one detail of every refused credential.
		const me = await get<Problem>("/api/me", await signToken({ userId, orgId: null }));
		expect(me.status, me.text).toBe(401);
		expect(me.json.detail).toBe("the credential is invalid or expired");
		expect(me.headers.get("www-authenticate")).toBe('Bearer error="invalid_token"');
		// Nor does such a token reach the organization, even one issued after the deletion (which the session
		// revocation would not refuse): the deleted user's membership has ended with it.
		const orgToken = await signToken({ userId, orgId, role: "org:member", issuedAt: Math.floor(Date.now() / 1000) + 2 });
		expect((await get(`/api/orgs/${orgId}`, orgToken)).status).toBe(403);
		expect((await get<{ data: unknown[] }>("/api/me/organizations", orgToken)).json.data).toEqual([]);

		// Audit entries name the user by id only.
		const audits = sent.filter((m) => m.kind === "audit" && JSON.stringify(m).includes(userId));
		expect(audits.length).toBeGreaterThan(0);
		for (const a of audits) {
			expect(JSON.stringify(a)).not.toContain(email);
			expect(JSON.stringify(a)).not.toContain("Grace");
		}
	});
});

describe("session events are kept without the sign-in context they carry", () => {
	it("the user object (emails), the client's IP and user agent are not stored; what a replay needs is, and it replays", async () => {
		const userId = uid("user");
		const sid = uid("sess");
		const email = `ada-${userId}@example.com`;
		const data = {
			id: sid,
			object: "session",
			user_id: userId,
			client_id: "client_1",
			status: "ended",
			created_at: 1_700_000_000_000,
			updated_at: 1_700_000_100_000,
			expire_at: 1_700_604_800_000,
			abandon_at: 1_702_592_000_000,
			last_active_at: 1_700_000_100_000,
			user: { id: userId, email_addresses: [{ email_address: email }], first_name: "Ada" },
		};
		const msg = messageFor(envelope("session.ended", data));
		const withContext = { ...JSON.parse(msg.body), event_attributes: { http_request: { client_ip: "203.0.113.9", user_agent: "Mozilla/5.0 Ada" } } };
		const sent = { ...msg, body: JSON.stringify(withContext) };
		expect((await deliver([sent])).explicitAcks).toHaveLength(1);
		const row = await eventRow(sent.svixId);
		expect(row).toMatchObject({ type: "session.ended", outcome: "processed" });
		const stored = String(row!.payload);
		for (const secret of [email, "Ada", "203.0.113.9", "Mozilla"]) expect(stored).not.toContain(secret);
		expect(JSON.parse(stored)).toEqual({
			type: "session.ended",
			object: "event",
			timestamp: withContext.timestamp,
			data: { id: sid, object: "session", user_id: userId, status: "ended", created_at: 1_700_000_000_000, updated_at: 1_700_000_100_000, expire_at: 1_700_604_800_000, abandon_at: 1_702_592_000_000 },
		});
		expect(await env.DB.prepare("SELECT user_id FROM revoked_sessions WHERE sid = ?").bind(sid).first()).toEqual({ user_id: userId });
	});
});

describe("retention: the cron prunes payloads, delivery logs and idempotency keys, never audit entries", () => {
	const old = (now: number) => now - (EVENT_RETENTION_DAYS + 1) * DAY;
	const recent = (now: number) => now - (EVENT_RETENTION_DAYS - 1) * DAY;

	async function seedEvent(id: string, receivedAt: number, outcome: string) {
		await env.DB.prepare(
			`INSERT INTO events (svix_id, organization_id, source, type, entity_id, payload, event_timestamp, received_at, processed_at, outcome, attempts)
			VALUES (?, NULL, 'clerk', 'user.updated', 'user_x', '{"email":"x@example.com"}', ?, ?, ?, ?, 1)`,
		)
			.bind(id, receivedAt, receivedAt, outcome === "queued" ? null : receivedAt, outcome)
			.run();
	}
	async function seedDelivery(id: string, orgId: string, updatedAt: number, status: string) {
		await env.DB.prepare(
			`INSERT INTO webhook_deliveries (id, organization_id, endpoint_id, event_id, event_type, payload, status, attempts, created_at, updated_at)
			VALUES (?, ?, 'whe_x', ?, 'order.created', '{}', ?, 1, ?, ?)`,
		)
			.bind(id, orgId, `evt_${id}`, status, updatedAt, updatedAt)
			.run();
	}
	async function seedKey(orgId: string, key: string, createdAt: number, state: "done" | "pending", leaseUntil: number | null) {
		await env.DB.prepare(
			`INSERT INTO idempotency_keys (organization_id, key, user_id, request_hash, state, status, response_body, created_at, lease_until)
			VALUES (?, ?, 'user_x', 'h', ?, 201, '{}', ?, ?)`,
		)
			.bind(orgId, key, state, createdAt, leaseUntil)
			.run();
	}

	it(`after ${EVENT_RETENTION_DAYS} days: finished rows go, in-flight rows and audit entries stay`, async () => {
		const now = Date.now();
		const orgId = await seedOrg();
		const p = uid("ret");
		await seedEvent(`${p}_old_processed`, old(now), "processed");
		await seedEvent(`${p}_old_failed`, old(now), "failed");
		await seedEvent(`${p}_old_queued`, old(now), "queued");
		await seedEvent(`${p}_recent`, recent(now), "processed");
		await seedDelivery(`${p}_old_ok`, orgId, old(now), "succeeded");
		await seedDelivery(`${p}_old_failed`, orgId, old(now), "failed");
		await seedDelivery(`${p}_old_retrying`, orgId, old(now), "retrying");
		await seedDelivery(`${p}_recent`, orgId, recent(now), "succeeded");
		await seedKey(orgId, `${p}_old_done`, old(now), "done", null);
		await seedKey(orgId, `${p}_old_stuck`, old(now), "pending", old(now) + 30_000);
		await seedKey(orgId, `${p}_recent`, recent(now), "done", null);
		await env.DB.prepare(
			`INSERT INTO audit_logs (id, organization_id, seq, event_id, actor_type, actor_id, action, occurred_at, prev_hash, hash)
			VALUES (?, ?, 1, ?, 'system', NULL, 'plan.changed', ?, 'genesis', 'h1')`,
		)
			.bind(`aud_${p}`, orgId, `evt_${p}`, now - 400 * DAY)
			.run();

		await runScheduled(env, now);

		const ids = async (sql: string) =>
			((await env.DB.prepare(sql).bind(`${p}%`).all<{ id: string }>()).results.map((r) => r.id) ?? []).sort();
		expect(await ids("SELECT svix_id AS id FROM events WHERE svix_id LIKE ?")).toEqual([`${p}_old_queued`, `${p}_recent`]);
		expect(await ids("SELECT id FROM webhook_deliveries WHERE id LIKE ?")).toEqual([`${p}_old_retrying`, `${p}_recent`]);
		expect(await ids("SELECT key AS id FROM idempotency_keys WHERE key LIKE ?")).toEqual([`${p}_recent`]);
		expect(await ids("SELECT id FROM audit_logs WHERE id LIKE ?")).toEqual([]);
		expect(await env.DB.prepare("SELECT id FROM audit_logs WHERE id = ?").bind(`aud_${p}`).first()).toEqual({ id: `aud_${p}` });
	});

	it("an idempotency key is kept at least as long as it can be replayed (24 h)", async () => {
		const now = Date.now();
		const orgId = await seedOrg();
		const p = uid("key");
		await seedKey(orgId, `${p}_fresh`, now - 60_000, "done", null);
		await runScheduled(env, now);
		expect(await env.DB.prepare("SELECT key FROM idempotency_keys WHERE key = ?").bind(`${p}_fresh`).first()).toEqual({
			key: `${p}_fresh`,
		});
	});

	it("prunes in bounded batches: one run deletes at most 2,000 rows of a table, the next run the rest", async () => {
		const now = Date.now();
		const p = uid("bulk");
		// 2,100 expired events, older than anything else in the table (pruned oldest first).
		await env.DB.prepare(
			`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2100)
			INSERT INTO events (svix_id, source, type, payload, event_timestamp, received_at, processed_at, outcome, attempts)
			SELECT ? || '_' || i, 'clerk', 'user.updated', '{}', i, 1000 + i, 1000 + i, 'processed', 1 FROM n`,
		)
			.bind(p)
			.run();
		const left = async () =>
			(await env.DB.prepare("SELECT count(*) AS n FROM events WHERE svix_id LIKE ?").bind(`${p}_%`).first<{ n: number }>())!.n;
		expect(await left()).toBe(2100);
		await runScheduled(env, now);
		expect(await left()).toBe(100);
		await runScheduled(env, now);
		expect(await left()).toBe(0);
	});
});
