import { env } from "cloudflare:workers";
import { Webhook } from "svix";
import { describe, expect, it, vi } from "vitest";
import { deletedData, envelope, membershipData, svixHeaders, userData } from "../helpers/clerk";
import { seedMembership, seedOrg, seedUser, uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { DLQ, deliver, eventRow, messageFor } from "../helpers/queue";
import { type Body, call, callWithEnv, get } from "../helpers/request";
import { TEST_WEBHOOK_SECRET } from "../helpers/vars";
import { eventually } from "../helpers/wait";

type Me = Body<"GET /api/me">;

const post = (body: string, headers: Record<string, string>) => call("POST", "/api/webhooks/clerk", { body, headers });
const user = (id: string) => env.DB.prepare("SELECT * FROM users WHERE id = ?").bind(id).first<Record<string, unknown>>();

/** Standard Webhooks header names for `body` (same signing scheme as Svix). */
function standardHeaders(body: string, id = uid("msg")) {
	const at = Math.floor(Date.now() / 1000);
	return {
		"webhook-id": id,
		"webhook-timestamp": String(at),
		"webhook-signature": new Webhook(TEST_WEBHOOK_SECRET).sign(id, new Date(at * 1000), body),
		"content-type": "application/json",
	};
}

describe("16.2: one malformed event does not poison its batch", () => {
	it("a user.created whose email_addresses contains null ends failed with its error; the 6 valid users are processed", async () => {
		const good = Array.from({ length: 6 }, () => uid("user"));
		const badId = uid("user_bad");
		const badData = { ...userData(badId), email_addresses: [null, ...userData(badId).email_addresses] };
		const bad = messageFor(envelope("user.created", badData));
		// The route accepts it (signed, a well-formed envelope): the consumer must fail it visibly.
		const raw = bad.body;
		const ingest = await post(raw, svixHeaders(raw));
		expect(ingest.status, ingest.text).toBe(202);

		const msgs = good.map((id) => messageFor(envelope("user.created", userData(id))));
		msgs.splice(3, 0, bad);
		const result = await deliver(msgs);
		// Valid events are acked; the bad one is either failed for good (acked) or retried on its own.
		const retried = result.retryMessages.map((r: { msgId: string }) => r.msgId);
		expect(retried.filter((id: string) => id !== result.ids[3])).toEqual([]);
		for (const id of good) expect(await user(id), id).toMatchObject({ email: `${id}@example.com` });
		for (const m of msgs.filter((m) => m !== bad)) expect(await eventRow(m.svixId)).toMatchObject({ outcome: "processed" });
		const row = await eventRow(bad.svixId);
		expect(row).toMatchObject({ outcome: "failed", type: "user.created", entity_id: badId });
		expect(String(row?.error)).toContain("email_addresses");
		expect(await user(badId)).toBeNull();
	});

	it("a role.created whose permissions list holds junk fails alone", async () => {
		const userId = uid("user");
		const badRole = messageFor(
			envelope("role.created", {
				id: uid("role"),
				object: "role",
				key: `org:${uid("junk").toLowerCase()}`,
				name: "Junk",
				permissions: [null, 42],
				created_at: 1_700_000_000_000,
				updated_at: 1_700_000_000_000,
			}),
		);
		const ok = messageFor(envelope("user.created", userData(userId)));
		const result = await deliver([badRole, ok]);
		expect(result.retryMessages).toEqual([]);
		expect(await user(userId)).not.toBeNull();
		expect(await eventRow(badRole.svixId)).toMatchObject({ outcome: "failed" });
		expect(String((await eventRow(badRole.svixId))?.error)).toContain("permissions");
	});
});

describe("signature before the per-IP limit", () => {
	it("700 correctly signed events from one IP all get 202; unsigned and badly signed traffic stays IP-limited", { timeout: 90_000 }, async () => {
		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send").mockResolvedValue(undefined as never);
		const ip = `198.51.100.${1 + Math.floor(Math.random() * 250)}`;
		const strict = { RATE_LIMIT_MODE: "strict" };
		const statuses: number[] = [];
		for (let i = 0; i < 700; i += 50) {
			const batch = Array.from({ length: 50 }, () => {
				const raw = JSON.stringify(envelope("user.updated", userData(uid("user"))));
				return callWithEnv(strict, "POST", "/api/webhooks/clerk", {
					body: raw,
					headers: { ...svixHeaders(raw), "cf-connecting-ip": ip },
				});
			});
			statuses.push(...(await Promise.all(batch)).map((r) => r.status));
		}
		expect(statuses.filter((s) => s !== 202)).toEqual([]);
		expect(send).toHaveBeenCalledTimes(700);

		// A badly signed request from the same IP spends the IP budget (which the 700 did not touch).
		const raw = JSON.stringify(envelope("user.updated", userData(uid("user"))));
		const forged = await callWithEnv(strict, "POST", "/api/webhooks/clerk", {
			body: raw,
			headers: { ...svixHeaders(raw, { secret: "whsec_dGhpcyBpcyBub3QgdGhlIHJpZ2h0IGtleQ==" }), "cf-connecting-ip": ip },
		});
		expect(forged.status, forged.text).toBe(401);
		expect(forged.headers.get("ratelimit-limit")).toBe("600");
		expect(Number(forged.headers.get("ratelimit-remaining"))).toBe(599);
		// Unsigned traffic is still refused past 600/min (the bucket refills at 10/s while this runs).
		const unsigned: number[] = [];
		for (let i = 0; i < 1_500 && !unsigned.includes(429); i += 62) {
			const batch = Array.from({ length: 62 }, () =>
				callWithEnv(strict, "POST", "/api/webhooks/clerk", { body: "{}", headers: { "cf-connecting-ip": ip } }),
			);
			unsigned.push(...(await Promise.all(batch)).map((r) => r.status));
		}
		expect(unsigned).toContain(429);
		expect(unsigned.filter((s) => s !== 401 && s !== 429)).toEqual([]);
		// ... while signed events from that IP are still accepted.
		const again = JSON.stringify(envelope("user.updated", userData(uid("user"))));
		const signed = await callWithEnv(strict, "POST", "/api/webhooks/clerk", {
			body: again,
			headers: { ...svixHeaders(again), "cf-connecting-ip": ip },
		});
		expect(signed.status, signed.text).toBe(202);
	});
});

describe("Standard Webhooks headers and raw bytes", () => {
	it("webhook-id / webhook-timestamp / webhook-signature are accepted like svix-*", async () => {
		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send");
		const raw = JSON.stringify(envelope("user.created", userData(uid("user"))));
		const headers = standardHeaders(raw);
		const res = await post(raw, headers);
		expect(res.status, res.text).toBe(202);
		expect(res.json).toEqual({ status: "queued", svixId: headers["webhook-id"] });
		expect(send.mock.calls[0]?.[0]).toMatchObject({ svixId: headers["webhook-id"], type: "user.created" });
		// A forged one is still refused.
		const forged = await post(raw.replace("Grace", "Mallory"), headers);
		expect(forged.status).toBe(401);
	});

	it("a body with a UTF-8 BOM, signed over its bytes, verifies and is processed", async () => {
		const userId = uid("user");
		const raw = `\uFEFF${JSON.stringify(envelope("user.created", userData(userId, { first: "Bom" })))}`;
		const res = await post(raw, svixHeaders(raw));
		expect(res.status, res.text).toBe(202);
		const row = await eventually(
			() => user(userId),
			(u) => u !== null,
		);
		expect(row).toMatchObject({ first_name: "Bom" });
	});

	it("a BOM that was not signed does not verify: the signature covers the exact bytes", async () => {
		// Signed over the text without a BOM, sent with one: the bytes differ, so it must not verify.
		const inner = JSON.stringify(envelope("user.created", userData(uid("user"))));
		const res = await post(`\uFEFF${inner}`, svixHeaders(inner));
		expect(res.status, res.text).toBe(401);
	});
});

describe("ingest refuses what the consumer could not take", () => {
	it("a ~98 KB body full of quotes and non-ASCII answers 413 PAYLOAD_TOO_LARGE, not 503", async () => {
		const raw = JSON.stringify(
			envelope("user.updated", { ...userData(uid("user")), pad: `${'"'.repeat(20_000)}${"€".repeat(19_000)}` }),
		);
		const bytes = new TextEncoder().encode(raw).byteLength;
		expect(bytes).toBeGreaterThan(95_000);
		expect(bytes).toBeLessThan(96 * 1024);
		const res = await post(raw, svixHeaders(raw));
		expect(res.status, res.text).toBe(413);
		expect(res.json).toMatchObject({ status: 413, code: "PAYLOAD_TOO_LARGE" });
	});

	it("a body that fits once queued is accepted (non-ASCII counted in bytes, not rejected early)", async () => {
		const raw = JSON.stringify(envelope("user.updated", { ...userData(uid("user")), pad: "é".repeat(40_000) }));
		const res = await post(raw, svixHeaders(raw));
		expect(res.status, res.text).toBe(202);
	});

	const bad: [string, () => { raw: string; headers: Record<string, string> }][] = [
		[
			"svix-id over 200 characters",
			() => {
				const raw = JSON.stringify(envelope("user.created", userData(uid("user"))));
				return { raw, headers: svixHeaders(raw, { id: `msg_${"x".repeat(240)}` }) };
			},
		],
		[
			"type over 200 characters",
			() => {
				const raw = JSON.stringify(envelope(`user.${"x".repeat(240)}`, userData(uid("user"))));
				return { raw, headers: svixHeaders(raw) };
			},
		],
		[
			"negative envelope timestamp",
			() => {
				const raw = JSON.stringify(envelope("user.created", userData(uid("user")), -5));
				return { raw, headers: svixHeaders(raw) };
			},
		],
		[
			"fractional envelope timestamp",
			() => {
				const raw = JSON.stringify(envelope("user.created", userData(uid("user")), 1_700_000_000_000.5));
				return { raw, headers: svixHeaders(raw) };
			},
		],
		[
			"svix-timestamp that is not a positive integer",
			() => {
				const raw = JSON.stringify(envelope("user.created", userData(uid("user"))));
				const h = svixHeaders(raw);
				return { raw, headers: { ...h, "svix-timestamp": `${h["svix-timestamp"]}.0` } };
			},
		],
	];
	it.each(bad)("%s: 400, nothing queued", async (_name, make) => {
		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send");
		const { raw, headers } = make();
		const res = await post(raw, headers);
		expect(res.status, res.text).toBe(400);
		expect(res.headers.get("content-type")).toBe("application/problem+json");
		expect(send).not.toHaveBeenCalled();
	});

	it("envelope timestamps in seconds are read as seconds: deleted_at is not 1970", async () => {
		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send").mockResolvedValue(undefined as never);
		const userId = uid("user");
		const at = Math.floor(Date.now() / 1000);
		const raw = JSON.stringify(envelope("user.deleted", deletedData(userId, "user"), at));
		expect((await post(raw, svixHeaders(raw))).status).toBe(202);
		const queued = send.mock.calls[0]?.[0] as { timestamp: number };
		expect(queued.timestamp).toBe(at * 1000);
		send.mockRestore();

		// A message already queued with a seconds timestamp is read the same way by the consumer.
		await deliver([messageFor(envelope("user.created", userData(userId)))]);
		await deliver([messageFor(envelope("user.deleted", deletedData(userId, "user"), 1_750_000_000))]);
		expect(await user(userId)).toMatchObject({ deleted_at: 1_750_000_000_000 });
	});

	it("a dead-lettered event records its real attempt count and last error", async () => {
		const poison = uid("user_dlq");
		await env.DB.exec(
			`CREATE TRIGGER fail_${poison} BEFORE INSERT ON users WHEN NEW.id = '${poison}' BEGIN SELECT RAISE(ABORT, 'injected failure'); END;`,
		);
		const msg = messageFor(envelope("user.created", userData(poison)));
		// max_retries = 5: six deliveries, then the dead-letter queue (where attempts start again at 1).
		for (let attempt = 1; attempt <= 6; attempt++) {
			const r = await deliver([msg], { attempts: attempt });
			expect(r.retryMessages).toHaveLength(1);
		}
		await env.DB.exec(`DROP TRIGGER fail_${poison};`);
		const dlq = await deliver([msg], { queue: DLQ, attempts: 1 });
		expect(dlq.explicitAcks).toHaveLength(1);
		const row = await eventRow(msg.svixId);
		expect(row).toMatchObject({ outcome: "failed", attempts: 6 });
		expect(String(row?.error)).toContain("injected failure");
	});
});

describe("custom roles and permissions whose key is reused", () => {
	const roleEvent = (type: string, id: string, key: string, perms: { id: string; key: string }[], ts: number) =>
		messageFor(
			envelope(type, {
				id,
				object: "role",
				key,
				name: "Editor",
				permissions: perms.map((p) => ({ ...p, name: p.key, object: "permission" })),
				created_at: ts,
				updated_at: ts,
			}),
		);

	it("role.created with the key of a deleted role (new id) applies; members keep their permissions", async () => {
		const key = `org:${uid("editor").toLowerCase()}`;
		const permKey = `org:${uid("posts").toLowerCase()}:edit`;
		const oldId = uid("role");
		const newId = uid("role");
		await deliver([roleEvent("role.created", oldId, key, [{ id: uid("perm"), key: permKey }], 1_700_000_000_000)]);
		await deliver([messageFor(envelope("role.deleted", { id: oldId, object: "role", deleted: true }, 1_700_000_100_000))]);
		const created = roleEvent(
			"role.created",
			newId,
			key,
			[
				{ id: uid("perm"), key: permKey },
				{ id: uid("perm"), key: "org:members:read" },
			],
			1_700_000_200_000,
		);
		const r = await deliver([created]);
		expect(r.retryMessages).toEqual([]);
		expect(await eventRow(created.svixId)).toMatchObject({ outcome: "processed" });

		const orgId = await seedOrg();
		const editor = await seedUser();
		await seedMembership(orgId, editor, key);
		const me = await get<Me>("/api/me", await signToken({ userId: editor, orgId, role: key }));
		expect(me.json.organization?.permissions.sort()).toEqual(["org:members:read", permKey].sort());
	});

	it("permission.created with the key of a deleted permission (new id) applies", async () => {
		const key = `org:${uid("reports").toLowerCase()}:read`;
		const oldId = uid("perm");
		const newId = uid("perm");
		const perm = (id: string, name: string, ts: number) => ({
			id,
			object: "permission",
			key,
			name,
			created_at: ts,
			updated_at: ts,
		});
		await deliver([messageFor(envelope("permission.created", perm(oldId, "Old", 1_700_000_000_000)))]);
		await deliver([messageFor(envelope("permission.deleted", { id: oldId, object: "permission", deleted: true }, 1_700_000_100_000))]);
		const created = messageFor(envelope("permission.created", perm(newId, "Reports", 1_700_000_200_000)));
		await deliver([created]);
		expect(await eventRow(created.svixId)).toMatchObject({ outcome: "processed" });
		const row = await env.DB.prepare("SELECT id, name, deleted_at FROM permissions WHERE key = ?").bind(key).first();
		expect(row).toEqual({ id: newId, name: "Reports", deleted_at: null });

		// A role granting it (sent after) resolves to the live permission.
		const roleKey = `org:${uid("viewer").toLowerCase()}`;
		await deliver([roleEvent("role.created", uid("role"), roleKey, [{ id: newId, key }], 1_700_000_300_000)]);
		const orgId = await seedOrg();
		const viewer = await seedUser();
		await seedMembership(orgId, viewer, roleKey);
		const me = await get<Me>("/api/me", await signToken({ userId: viewer, orgId, role: roleKey }));
		expect(me.json.organization?.permissions).toEqual([key]);
	});

	it("a role or permission deleted before its creation arrived stays deleted: the late created is stale", async () => {
		const roleId = uid("role");
		const roleKey = `org:${uid("late").toLowerCase()}`;
		await deliver([messageFor(envelope("role.deleted", { id: roleId, object: "role", deleted: true }, 1_700_000_100_000))]);
		const lateRole = roleEvent("role.created", roleId, roleKey, [{ id: uid("perm"), key: "org:members:read" }], 1_700_000_000_000);
		await deliver([lateRole]);
		expect(await eventRow(lateRole.svixId)).toMatchObject({ outcome: "stale" });
		expect(await env.DB.prepare("SELECT 1 AS live FROM roles WHERE key = ? AND deleted_at IS NULL").bind(roleKey).first()).toBeNull();

		const permId = uid("perm");
		const permKey = `org:${uid("late").toLowerCase()}:read`;
		await deliver([messageFor(envelope("permission.deleted", { id: permId, object: "permission", deleted: true }, 1_700_000_100_000))]);
		const latePerm = messageFor(
			envelope("permission.created", { id: permId, object: "permission", key: permKey, name: "Late", created_at: 1_700_000_000_000, updated_at: 1_700_000_000_000 }),
		);
		await deliver([latePerm]);
		expect(await eventRow(latePerm.svixId)).toMatchObject({ outcome: "stale" });
		expect(await env.DB.prepare("SELECT 1 AS live FROM permissions WHERE key = ? AND deleted_at IS NULL").bind(permKey).first()).toBeNull();
	});

	it("permission.deleted finds a permission of the seeded catalogue by the Clerk id its created (or a role's list) gave it", async () => {
		const key = "org:usage:read";
		const clerkId = uid("perm");
		try {
			await deliver([
				messageFor(envelope("permission.created", { id: clerkId, object: "permission", key, name: "Usage", created_at: 1_700_000_000_000, updated_at: 1_700_000_000_000 })),
			]);
			expect(await env.DB.prepare("SELECT id, clerk_id FROM permissions WHERE key = ?").bind(key).first()).toEqual({ id: "perm_usage_read", clerk_id: clerkId });
			await deliver([messageFor(envelope("permission.deleted", { id: clerkId, object: "permission", deleted: true }, 1_700_000_100_000))]);
			expect(await env.DB.prepare("SELECT deleted_at FROM permissions WHERE key = ?").bind(key).first()).toEqual({ deleted_at: 1_700_000_100_000 });
			// No tombstone of its own: the seeded row is the permission.
			expect(await env.DB.prepare("SELECT 1 AS n FROM permissions WHERE id = ?").bind(clerkId).first()).toBeNull();
		} finally {
			await env.DB.prepare("UPDATE permissions SET deleted_at = NULL, clerk_id = NULL, source_updated_at = 0 WHERE key = ?").bind(key).run();
		}
	});

	it("admin-data does not count members whose user is deleted", async () => {
		const orgId = await seedOrg();
		const admin = await seedUser();
		await seedMembership(orgId, admin, "org:admin");
		const gone = uid("user");
		await deliver([
			messageFor(envelope("organizationMembership.created", membershipData(uid("orgmem"), orgId, gone))),
			messageFor(envelope("user.created", userData(gone))),
		]);
		const token = await signToken({ userId: admin });
		const before = await get<{ memberCount: number }>(`/api/orgs/${orgId}/admin-data`, token);
		expect(before.json.memberCount).toBe(2);
		await deliver([messageFor(envelope("user.deleted", deletedData(gone, "user"), Date.now()))]);
		const after = await get<{ memberCount: number; admins: number }>(`/api/orgs/${orgId}/admin-data`, token);
		expect(after.status, after.text).toBe(200);
		expect(after.json).toMatchObject({ memberCount: 1, admins: 1 });
	});
});
