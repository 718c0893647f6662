import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { REVOCATION_HOLD_MS, REVOCATION_MAX_STALENESS_MS } from "../../src/services/sessions";
import { envelope, userData } from "../helpers/clerk";
import { seedUser, uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { deliver, eventRow, messageFor } from "../helpers/queue";
import { get, type TestResponse } from "../helpers/request";

// Session revocation (issue 12): the list is checked on every request, but each isolate re-reads it
// at most every few seconds. "Within 5 s" is measured on an injected clock (Date), never by sleeping.

afterEach(() => {
	vi.useRealTimers();
});

function sessionData(sid: string, userId: string, status: string) {
	return {
		id: sid,
		object: "session",
		user_id: userId,
		client_id: "client_test",
		status,
		last_active_at: Date.now(),
		expire_at: Date.now() + 7 * 86_400_000,
		abandon_at: Date.now() + 30 * 86_400_000,
		created_at: Date.now() - 60_000,
		updated_at: Date.now(),
	};
}

function expectRefused(res: TestResponse) {
	expect(res.status, res.text).toBe(401);
	expect(res.headers.get("www-authenticate")).toBe('Bearer error="invalid_token"');
	expect(res.json).toMatchObject({ status: 401, detail: "the credential is invalid or expired" });
}

/** Moves this isolate's clock (Date only) forward by `ms`: timers and I/O keep real time. */
function advance(ms: number) {
	const next = Date.now() + ms;
	vi.useFakeTimers({ toFake: ["Date"] });
	vi.setSystemTime(next);
}

describe("session revocation", () => {
	it.each([
		["session.revoked", "revoked"],
		["session.ended", "ended"],
		["session.removed", "removed"],
	])("%s: the sid's tokens are refused on the next request at most 5 s later", async (type, status) => {
		const userId = await seedUser();
		const sid = uid("sess");
		const token = await signToken({ userId, extra: { sid } });
		const sameUserOtherSession = await signToken({ userId, extra: { sid: uid("sess") } });
		// The isolate's revocation list is fresh now: the revocation below has to reach it by a refresh.
		expect((await get("/api/me", token)).status).toBe(200);

		const msg = messageFor(envelope(type, sessionData(sid, userId, status)));
		await deliver([msg]);
		expect(await eventRow(msg.svixId)).toMatchObject({ outcome: "processed", entity_id: sid });

		advance(REVOCATION_MAX_STALENESS_MS);
		expectRefused(await get("/api/me", token));
		expectRefused(await get("/api/me", token));
		expect((await get("/api/me", sameUserOtherSession)).status).toBe(200);
	});

	it("user.deleted: every token of the user issued before the deletion is refused within 5 s", async () => {
		const userId = await seedUser();
		const bystander = await seedUser();
		const issuedAt = Math.floor(Date.now() / 1000) - 10;
		const a = await signToken({ userId, issuedAt, extra: { sid: uid("sess") } });
		const b = await signToken({ userId, issuedAt, extra: { sid: uid("sess") } });
		const other = await signToken({ userId: bystander, issuedAt });
		expect((await get("/api/me", a)).status).toBe(200);

		await deliver([messageFor(envelope("user.deleted", { id: userId, object: "user", deleted: true }))]);
		advance(REVOCATION_MAX_STALENESS_MS);
		expectRefused(await get("/api/me", a));
		expectRefused(await get("/api/me", b));
		expectRefused(await get(`/api/orgs/${uid("org")}`, b));
		expect((await get("/api/me", other)).status).toBe(200);
	});

	it("user.created/updated do not revoke anything", async () => {
		const userId = uid("user");
		const token = await signToken({ userId });
		await deliver([messageFor(envelope("user.created", userData(userId)))]);
		advance(REVOCATION_MAX_STALENESS_MS);
		expect((await get("/api/me", token)).status).toBe(200);
	});

	it("rows are held for the longest token lifetime and expired ones are pruned on insert", async () => {
		await env.DB.prepare("INSERT INTO revoked_sessions (sid, user_id, revoked_at, expires_at) VALUES ('sess_old', NULL, 1, 2)").run();
		await env.DB.prepare(
			"INSERT INTO revoked_users (user_id, revoked_before, revoked_at, expires_at) VALUES ('user_old', 1, 1, 2)",
		).run();
		const sid = uid("sess");
		await deliver([messageFor(envelope("session.revoked", sessionData(sid, "user_x", "revoked")))]);
		await deliver([messageFor(envelope("user.deleted", { id: uid("user"), object: "user", deleted: true }))]);
		const old = await env.DB.prepare(
			"SELECT (SELECT count(*) FROM revoked_sessions WHERE sid = 'sess_old') + (SELECT count(*) FROM revoked_users WHERE user_id = 'user_old') AS n",
		).first<{ n: number }>();
		expect(old?.n).toBe(0);
		const row = await env.DB.prepare("SELECT * FROM revoked_sessions WHERE sid = ?").bind(sid).first<Record<string, number>>();
		expect(row).toMatchObject({ user_id: "user_x" });
		expect((row?.expires_at ?? 0) - (row?.revoked_at ?? 0)).toBe(REVOCATION_HOLD_MS);
		expect(Math.abs((row?.revoked_at ?? 0) - Date.now())).toBeLessThan(60_000);
	});

	it("a session event without an id is ignored", async () => {
		const msg = messageFor(envelope("session.revoked", { object: "session", user_id: "user_x" }));
		await deliver([msg]);
		expect(await eventRow(msg.svixId)).toMatchObject({ outcome: "ignored" });
	});
});
