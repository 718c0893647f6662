import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { Webhook } from "svix";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { API_KEY_CACHE_TTL_MS, API_KEY_PATTERN, ROTATION_GRACE_MS, setApiKeyClock } from "../../src/auth/api-key";
import { LAST_USED_WRITE_INTERVAL_MS, resetApiKeyState } from "../../src/services/api-keys";
import { PLANS } from "../../src/services/plans";
import type { AuditMessage } from "../../src/queue/tenant-events";
import { envelope } from "../helpers/clerk";
import { seedOrg } from "../helpers/factories";
import { fakeReceiver, stubNetwork } from "../helpers/network";
import { deliver, messageFor } from "../helpers/queue";
import { type Body, call, callWithEnv, type Problem, type TestResponse } from "../helpers/request";
import { drainStore, storeOf, storeSql } from "../helpers/store";
import { captureTenantEvents, deliverTenant } from "../helpers/tenant-queue";
import { seedTenant } from "../helpers/tenant";

type Created = Body<"POST /api/orgs/:orgId/api-keys">;
type Key = Body<"GET /api/orgs/:orgId/api-keys/:keyId">;
type Page = Body<"GET /api/orgs/:orgId/api-keys">;
type Me = Body<"GET /api/me">;

const INVALID_DETAIL = "the credential is invalid or expired";

let now = Date.now();
beforeEach(() => {
	resetApiKeyState();
	now = Date.now();
	setApiKeyClock(() => now);
});
afterEach(() => resetApiKeyState());

/** Creates a key as `token`; fails the test unless it is a 201. */
async function createKey(base: string, token: string, body: Record<string, unknown> = {}): Promise<Created> {
	const res = await call<Created>("POST", `${base}/api-keys`, {
		token,
		body: { name: "ci", permissions: ["org:products:read"], ...body },
	});
	expect(res.status, res.text).toBe(201);
	return res.json;
}

const expectInvalid = (res: TestResponse) => {
	expect(res.status, res.text).toBe(401);
	expect((res.json as Problem).detail).toBe(INVALID_DETAIL);
	expect(res.headers.get("www-authenticate")).toBe('Bearer error="invalid_token"');
};

describe("creating keys", () => {
	it("answers 201 with an sk_live_ secret shown once; list and get show only prefix + last 4", async () => {
		const t = await seedTenant();
		captureTenantEvents(vi);
		const created = await createKey(t.base, t.admin.token, { name: "deploys", rateLimitPerMinute: 30 });
		expect(created.key).toMatch(API_KEY_PATTERN);
		expect(created.key).toHaveLength(51);
		expect(created).toMatchObject({
			name: "deploys",
			prefix: "sk_live_",
			last4: created.key.slice(-4),
			permissions: ["org:products:read"],
			rateLimitPerMinute: 30,
			createdBy: t.admin.id,
			lastUsedAt: null,
			expiresAt: null,
		});

		const list = await call<Page>("GET", `${t.base}/api-keys`, { token: t.admin.token });
		expect(list.status, list.text).toBe(200);
		expect(list.json.data.map((k) => k.id)).toEqual([created.id]);
		const one = await call<Key>("GET", `${t.base}/api-keys/${created.id}`, { token: t.admin.token });
		expect(one.status).toBe(200);
		expect(one.json).toMatchObject({ id: created.id, prefix: "sk_live_", last4: created.key.slice(-4), createdBy: t.admin.id });
		for (const text of [list.text, one.text]) {
			expect(text).not.toContain(created.key);
			expect(text).not.toContain(created.key.slice(8, 40));
		}
		// Two keys never share a secret.
		const other = await createKey(t.base, t.admin.token);
		expect(other.key).not.toBe(created.key);
	});

	it("stores only the SHA-256: the plaintext is in no text column of D1 or of the tenant's store (api_keys, audit_logs, every table)", async () => {
		const t = await seedTenant();
		const sent = captureTenantEvents(vi);
		const created = await createKey(t.base, t.admin.token);
		const rotated = await call<Created>("POST", `${t.base}/api-keys/${created.id}/rotate`, { token: t.admin.token });
		expect(rotated.status, rotated.text).toBe(200);
		// The audit entries reach the tenant's store through the tenant-events consumer.
		await deliverTenant(sent);
		const audit = await storeSql<{ n: number }>(t.orgId, "SELECT count(*) AS n FROM audit_logs WHERE organization_id = ? AND action LIKE 'api_key.%'", t.orgId);
		expect(audit).toEqual([{ n: 2 }]);

		const digest = async (s: string) =>
			[...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)))]
				.map((b) => b.toString(16).padStart(2, "0"))
				.join("");
		const row = await env.DB.prepare("SELECT hash, previous_hash AS previousHash FROM api_keys WHERE id = ?")
			.bind(created.id)
			.first<{ hash: string; previousHash: string }>();
		expect(row).toEqual({ hash: await digest(rotated.json.key), previousHash: await digest(created.key) });

		const secrets = [created.key, rotated.json.key].map((k) => k.slice(8));
		const tablesSql =
			"SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'd1_%'";
		const textColumns = (cols: { name: string; type: string }[]) => cols.filter((c) => /text|char|clob|blob|^$/i.test(c.type)).map((c) => c.name);
		// instr, not LIKE: a 51-character pattern is past D1's LIKE limit.
		const hitSql = (table: string, col: string) => `SELECT count(*) AS n FROM "${table}" WHERE instr(CAST("${col}" AS TEXT), ?) > 0`;

		const d1Tables = (await env.DB.prepare(tablesSql).all<{ name: string }>()).results.map((r) => r.name);
		expect(d1Tables).toEqual(expect.arrayContaining(["api_keys"]));
		let scanned = 0;
		for (const table of d1Tables) {
			const cols = await env.DB.prepare(`SELECT name, type FROM pragma_table_info('${table}')`).all<{ name: string; type: string }>();
			for (const col of textColumns(cols.results)) {
				for (const secret of secrets) {
					const hit = await env.DB.prepare(hitSql(table, col)).bind(secret).first<{ n: number }>();
					expect(hit?.n, `D1 ${table}.${col}`).toBe(0);
				}
				scanned++;
			}
		}
		expect(scanned).toBeGreaterThan(20);

		// The tenant's store (its audit chain, outbox, …), scanned inside the object in one call.
		const store = await runInDurableObject(storeOf(t.orgId), (_obj, state) => {
			const sql = state.storage.sql;
			const out = { tables: [] as string[], hits: [] as string[], scanned: 0 };
			for (const { name: table } of sql.exec<{ name: string }>(tablesSql).toArray()) {
				out.tables.push(table);
				for (const col of textColumns(sql.exec<{ name: string; type: string }>(`SELECT name, type FROM pragma_table_info('${table}')`).toArray())) {
					for (const secret of secrets) if (sql.exec<{ n: number }>(hitSql(table, col), secret).one().n > 0) out.hits.push(`${table}.${col}`);
					out.scanned++;
				}
			}
			return out;
		});
		expect(store.tables).toEqual(expect.arrayContaining(["audit_logs", "outbox", "idempotency_keys"]));
		expect(store.hits).toEqual([]);
		expect(store.scanned).toBeGreaterThan(20);
	});

	it("validates permissions: unknown 400, not held by the creator 403, members without org:api_keys:manage 403", async () => {
		const t = await seedTenant({
			members: {
				admin: "org:admin",
				member: "org:member",
				keyManager: { permissions: ["org:api_keys:manage", "org:products:read"] },
			},
		});
		const post = (token: string, permissions: string[]) =>
			call<Problem>("POST", `${t.base}/api-keys`, { token, body: { name: "k", permissions } });

		const unknown = await post(t.admin.token, ["org:nope:read"]);
		expect(unknown.status, unknown.text).toBe(400);
		expect(unknown.json.errors?.[0]?.path).toBe("permissions.0");

		const notHeld = await post(t.keyManager.token, ["org:products:read", "org:orders:write"]);
		expect(notHeld.status, notHeld.text).toBe(403);
		expect(notHeld.json.detail).toContain("org:orders:write");

		expect((await post(t.keyManager.token, ["org:products:read"])).status).toBe(201);
		expect((await post(t.member.token, ["org:products:read"])).status).toBe(403);

		const unknownField = await call("POST", `${t.base}/api-keys`, {
			token: t.admin.token,
			body: { name: "k", permissions: [], role: "org:admin" },
		});
		expect(unknownField.status).toBe(400);
		const past = await call("POST", `${t.base}/api-keys`, {
			token: t.admin.token,
			body: { name: "k", permissions: [], expiresAt: now - 1 },
		});
		expect(past.status, past.text).toBe(400);
	});

	it("is limited per plan (free 2, pro 50, enterprise 1,000): 402 past the limit; revoked and expired keys do not count", async () => {
		expect([PLANS.free.limits.apiKeys, PLANS.pro.limits.apiKeys, PLANS.enterprise.limits.apiKeys]).toEqual([2, 50, 1_000]);
		const t = await seedTenant({ plan: "free" });
		const first = await createKey(t.base, t.admin.token);
		await createKey(t.base, t.admin.token, { expiresAt: now + 10_000 });
		const third = await call<Problem>("POST", `${t.base}/api-keys`, {
			token: t.admin.token,
			body: { name: "k", permissions: [] },
		});
		expect(third.status, third.text).toBe(402);
		expect(third.json.detail).toContain("upgrade to pro");

		expect((await call("DELETE", `${t.base}/api-keys/${first.id}`, { token: t.admin.token })).status).toBe(204);
		await createKey(t.base, t.admin.token);
		expect((await call("POST", `${t.base}/api-keys`, { token: t.admin.token, body: { name: "k", permissions: [] } })).status).toBe(402);
		now += 10_000; // the second key has expired
		await createKey(t.base, t.admin.token);

		const pro = await seedTenant({ plan: "pro" });
		for (let i = 0; i < 3; i++) await createKey(pro.base, pro.admin.token);
	});
});

describe("a key as principal apikey:<id>", () => {
	it("acts with exactly its own permissions (no role) on its organization's routes", async () => {
		const t = await seedTenant();
		const { key } = await createKey(t.base, t.admin.token, { permissions: ["org:products:read"] });
		expect((await call("GET", `${t.base}/products`, { token: key })).status).toBe(200);
		const org = await call<Body<"GET /api/orgs/:orgId">>("GET", t.base, { token: key });
		expect(org.status, org.text).toBe(200);
		expect(org.json).toMatchObject({ id: t.orgId, role: null });
		// Not among its permissions, though its creator holds them.
		expect((await call("GET", `${t.base}/members`, { token: key })).status).toBe(403);
		expect((await call("POST", `${t.base}/products`, { token: key, body: { name: "n", sku: "S-1", priceMinor: 1, currency: "INR" } })).status).toBe(403);
		expect((await call("GET", `${t.base}/api-keys`, { token: key })).status).toBe(403);
		// Role-only routes: a key has no role.
		expect((await call("GET", `${t.base}/admin-data`, { token: key })).status).toBe(403);
	});

	it("another organization's path answers exactly as to a non-member (403, or 404 when unknown); non-org routes refuse it", async () => {
		const a = await seedTenant();
		const b = await seedTenant();
		const { key } = await createKey(a.base, a.admin.token, { permissions: ["org:products:read", "org:members:read"] });
		for (const path of [b.base, `${b.base}/products`, `${b.base}/members`]) {
			const byKey = await call<Problem>("GET", path, { token: key });
			const byOutsider = await call<Problem>("GET", path, { token: a.admin.token });
			expect(byKey.status, byKey.text).toBe(403);
			expect(byKey.json.detail).toBe(byOutsider.json.detail);
		}
		const unknown = await call("GET", "/api/orgs/org_unknown_for_keys", { token: key });
		expect(unknown.status).toBe(404);
		const deleted = await seedOrg();
		await env.DB.prepare("UPDATE organizations SET deleted_at = 1 WHERE id = ?").bind(deleted).run();
		expect((await call("GET", `/api/orgs/${deleted}`, { token: key })).status).toBe(404);

		for (const [method, path] of [
			["GET", "/api/me/organizations"],
			["POST", "/api/admin/events/evt_x/replay"],
		] as const) {
			const res = await call(method, path, { token: key });
			expect(res.status, `${path}: ${res.text}`).toBe(403);
		}
		const pay = await call("POST", "/api/payments/orders", { token: key, body: { amount: 100, currency: "INR" } });
		expect(pay.status, pay.text).toBe(403);
	});

	it("/api/me answers {user:null, apiKey, organization:{role:null, permissions}}; a session's shape is unchanged", async () => {
		const t = await seedTenant();
		const created = await createKey(t.base, t.admin.token, { name: "reporter", permissions: ["org:usage:read", "org:products:read"] });
		const me = await call<Me>("GET", "/api/me", { token: created.key });
		expect(me.status, me.text).toBe(200);
		expect(me.json).toEqual({
			user: null,
			apiKey: { id: created.id, name: "reporter", prefix: "sk_live_", last4: created.key.slice(-4), expiresAt: null },
			organization: { id: t.orgId, slug: t.orgId.toLowerCase(), role: null, permissions: ["org:products:read", "org:usage:read"] },
		});
		const session = await call<Me>("GET", "/api/me", { token: t.admin.token });
		expect(Object.keys(session.json).sort()).toEqual(["organization", "user"]);
		expect(session.json.user?.id).toBe(t.admin.id);
	});

	it("an unknown, malformed, expired or cookie-borne key is a 401 with the generic detail", async () => {
		const t = await seedTenant();
		const { key } = await createKey(t.base, t.admin.token, { expiresAt: now + 60_000 });
		expect((await call("GET", t.base, { token: key })).status).toBe(200);
		expectInvalid(await call("GET", t.base, { token: `sk_live_${"A".repeat(43)}` }));
		expectInvalid(await call("GET", t.base, { token: `${key}x` }));
		expectInvalid(await call("GET", t.base, { token: "sk_live_short" }));
		expectInvalid(await call("GET", t.base, { headers: { cookie: `__session=${key}` } }));
		now += 60_000;
		expectInvalid(await call("GET", t.base, { token: key }));
	});

	it("is rate-limited in its own bucket (429 with headers) without spending the members' budget", async () => {
		// The tenant's budget is 4 a minute: what the key's refused request does not take, the members still have.
		const t = await seedTenant({ limits: { rateLimitPerMinute: 4 } });
		const limited = await createKey(t.base, t.admin.token, { rateLimitPerMinute: 2 });
		const other = await createKey(t.base, t.admin.token);
		// /products is served by the tenant's store, whose buckets it holds itself (services/rate-limit.ts LocalRateLimiter).
		// callWithEnv's settings reach the store: the Worker sends its settings with each request it forwards.
		const products = <T = unknown>(token: string) => callWithEnv<T>({ RATE_LIMIT_MODE: "strict" }, "GET", `${t.base}/products`, { token });
		{
			for (let i = 0; i < 2; i++) {
				const ok = await products(limited.key);
				expect(ok.status, ok.text).toBe(200);
				expect(ok.headers.get("ratelimit-limit")).toBe("2");
				expect(ok.headers.get("ratelimit-remaining")).toBe(String(1 - i));
			}
			const refused = await products<Problem>(limited.key);
			expect(refused.status, refused.text).toBe(429);
			expect(refused.json.code).toBe("RATE_LIMITED");
			expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
			expect(refused.headers.get("ratelimit-limit")).toBe("2");
			expect(refused.headers.get("ratelimit-remaining")).toBe("0");
			// The refusal took nothing of the tenant's 4: two are left, for another key and a member.
			const second = await products(other.key);
			expect(second.status, second.text).toBe(200);
			expect(second.headers.get("ratelimit-remaining")).toBe("1");
			const admin = await products(t.admin.token);
			expect(admin.status, admin.text).toBe(200);
			expect(admin.headers.get("ratelimit-remaining")).toBe("0");
			// And the keys' requests did count in the tenant's bucket: it is now spent for everyone.
			expect((await products(t.member.token)).status).toBe(429);
		}
	});

	it("is counted in the tenant's bucket too", async () => {
		const t = await seedTenant({ limits: { rateLimitPerMinute: 3 } });
		const { key } = await createKey(t.base, t.admin.token);
		const strict = { RATE_LIMIT_MODE: "strict" };
		for (let i = 0; i < 3; i++) expect((await callWithEnv(strict, "GET", t.base, { token: key })).status).toBe(200);
		// The tenant's 3 are spent by the key: a member is refused too.
		expect((await callWithEnv(strict, "GET", t.base, { token: t.member.token })).status).toBe(429);
	});

	it("is the actor of its audit entries (apikey:<id>)", async () => {
		const t = await seedTenant();
		const manager = await createKey(t.base, t.admin.token, { permissions: ["org:api_keys:manage", "org:products:read"] });
		const sent = captureTenantEvents(vi);
		const child = await createKey(t.base, manager.key, { permissions: ["org:products:read"] });
		expect(child.createdBy).toBe(`apikey:${manager.id}`);
		// A key cannot hand out more than it holds.
		const wider = await call("POST", `${t.base}/api-keys`, { token: manager.key, body: { name: "x", permissions: ["org:orders:read"] } });
		expect(wider.status).toBe(403);
		const audits = sent.filter((m): m is AuditMessage => m.kind === "audit");
		expect(audits).toHaveLength(1);
		expect(audits[0]).toMatchObject({ action: "api_key.created", actorId: `apikey:${manager.id}`, targetId: child.id });
	});
});

describe("changing keys", () => {
	it("PATCH changes exactly the fields sent; narrower permissions apply at once in this isolate", async () => {
		const t = await seedTenant();
		const k = await createKey(t.base, t.admin.token, { name: "a", permissions: ["org:products:read", "org:usage:read"], rateLimitPerMinute: 5 });
		expect((await call("GET", `${t.base}/usage`, { token: k.key })).status).toBe(200);
		const patch = (body: unknown) => call<Key>("PATCH", `${t.base}/api-keys/${k.id}`, { token: t.admin.token, body });

		const renamed = await patch({ name: "b" });
		expect(renamed.status, renamed.text).toBe(200);
		expect(renamed.json).toMatchObject({ name: "b", permissions: ["org:products:read", "org:usage:read"], rateLimitPerMinute: 5 });
		const narrowed = await patch({ permissions: ["org:products:read"] });
		expect(narrowed.json).toMatchObject({ name: "b", permissions: ["org:products:read"], rateLimitPerMinute: 5 });
		const reset = await patch({ rateLimitPerMinute: null });
		expect(reset.json).toMatchObject({ name: "b", permissions: ["org:products:read"], rateLimitPerMinute: null });
		expect((await patch({})).status).toBe(400);
		expect((await patch({ permissions: ["org:nope:x"] })).status).toBe(400);

		expect((await call("GET", `${t.base}/usage`, { token: k.key })).status).toBe(403);
		expect((await call("GET", `${t.base}/products`, { token: k.key })).status).toBe(200);
	});

	it("DELETE revokes: refused at once here, and the key disappears from the API", async () => {
		const t = await seedTenant();
		const sent = captureTenantEvents(vi);
		const k = await createKey(t.base, t.admin.token);
		expect((await call("GET", t.base, { token: k.key })).status).toBe(200);
		expect((await call("DELETE", `${t.base}/api-keys/${k.id}`, { token: t.admin.token })).status).toBe(204);
		expectInvalid(await call("GET", t.base, { token: k.key }));
		expect((await call("GET", `${t.base}/api-keys/${k.id}`, { token: t.admin.token })).status).toBe(404);
		expect((await call("DELETE", `${t.base}/api-keys/${k.id}`, { token: t.admin.token })).status).toBe(404);
		expect((await call<Page>("GET", `${t.base}/api-keys`, { token: t.admin.token })).json.data).toEqual([]);
		expect(sent.filter((m) => m.kind === "audit").map((m) => (m as AuditMessage).action)).toEqual(["api_key.created", "api_key.revoked"]);
	});

	it("keys that are not ours spend a per-IP budget (60 a minute): past it 429, refused before any lookup; a valid key spends none", async () => {
		const t = await seedTenant();
		const good = await createKey(t.base, t.admin.token);
		const strict = { RATE_LIMIT_MODE: "strict" };
		const ip = `198.51.100.${1 + Math.floor(Math.random() * 250)}`;
		expect((await callWithEnv(strict, "GET", `${t.base}/products`, { token: good.key, headers: { "cf-connecting-ip": ip } })).status).toBe(200);
		const random = () => `sk_live_${Array.from({ length: 43 }, () => "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[Math.floor(Math.random() * 62)]).join("")}`;
		const first = await callWithEnv(strict, "GET", `${t.base}/products`, { token: random(), headers: { "cf-connecting-ip": ip } });
		expectInvalid(first);
		expect(first.headers.get("ratelimit-limit")).toBe("60");
		expect(first.headers.get("ratelimit-remaining")).toBe("59");
		const statuses: number[] = [];
		for (let i = 0; i < 80 && !statuses.includes(429); i++) {
			statuses.push((await callWithEnv(strict, "GET", `${t.base}/products`, { token: random(), headers: { "cf-connecting-ip": ip } })).status);
		}
		expect(statuses.filter((s) => s === 401)).toHaveLength(59);
		expect(statuses.at(-1)).toBe(429);
		// Refused without a D1 lookup from now on, with the limit's headers.
		const prepare = vi.spyOn(env.DB, "prepare");
		const refused = await callWithEnv<Problem>(strict, "GET", `${t.base}/products`, { token: random(), headers: { "cf-connecting-ip": ip } });
		expect(refused.status).toBe(429);
		expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
		expect(refused.headers.get("ratelimit-remaining")).toBe("0");
		expect(prepare).not.toHaveBeenCalled();
		prepare.mockRestore();
		// A valid key this isolate holds (used a moment ago) is still served from that address.
		const held = await callWithEnv(strict, "GET", `${t.base}/products`, { token: good.key, headers: { "cf-connecting-ip": ip } });
		expect(held.status, held.text).toBe(200);
		// Another address, and a valid key, are not held back by it.
		expectInvalid(await callWithEnv(strict, "GET", `${t.base}/products`, { token: random(), headers: { "cf-connecting-ip": "198.51.100.251" } }));
		const ok = await callWithEnv(strict, "GET", `${t.base}/products`, { token: good.key, headers: { "cf-connecting-ip": "198.51.100.252" } });
		expect(ok.status, ok.text).toBe(200);
	});

	it("DELETE revokes the keys the key made too, and the keys those made, each with its api_key.revoked entry; others stay", async () => {
		const t = await seedTenant({ plan: "pro" });
		const sent = captureTenantEvents(vi);
		const manage = ["org:api_keys:manage", "org:products:read"];
		const leaked = await createKey(t.base, t.admin.token, { name: "leaked", permissions: manage });
		const child = await createKey(t.base, leaked.key, { name: "backdoor", permissions: manage });
		const grandchild = await createKey(t.base, child.key, { name: "deeper", permissions: ["org:products:read"] });
		const sibling = await createKey(t.base, t.admin.token, { name: "ci", permissions: ["org:products:read"] });
		const other = await seedTenant({ plan: "pro" });
		const elsewhere = await createKey(other.base, other.admin.token, { name: "elsewhere", permissions: ["org:products:read"] });
		for (const k of [leaked, child, grandchild, sibling]) expect((await call("GET", `${t.base}/products`, { token: k.key })).status).toBe(200);

		sent.length = 0;
		expect((await call("DELETE", `${t.base}/api-keys/${leaked.id}`, { token: t.admin.token })).status).toBe(204);
		for (const k of [leaked, child, grandchild]) expectInvalid(await call("GET", `${t.base}/products`, { token: k.key }));
		expect((await call("GET", `${t.base}/products`, { token: sibling.key })).status).toBe(200);
		expect((await call("GET", `${other.base}/products`, { token: elsewhere.key })).status).toBe(200);
		expect((await call<Page>("GET", `${t.base}/api-keys`, { token: t.admin.token })).json.data.map((k) => k.id)).toEqual([sibling.id]);
		const revoked = sent.filter((m) => m.kind === "audit").map((m) => m as AuditMessage);
		expect(revoked.every((m) => m.action === "api_key.revoked")).toBe(true);
		expect(revoked[0]?.targetId).toBe(leaked.id);
		expect(revoked.map((m) => m.targetId).sort()).toEqual([leaked.id, child.id, grandchild.id].sort());
		// A key revoked while an isolate still holds it in its cache (up to 5 s) makes no key: 401, nothing made.
		const stale = await createKey(t.base, t.admin.token, { name: "stale", permissions: manage });
		expect((await call("GET", `${t.base}/products`, { token: stale.key })).status).toBe(200);
		await env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?").bind(now, stale.id).run();
		const minted = await call("POST", `${t.base}/api-keys`, { token: stale.key, body: { name: "late", permissions: ["org:products:read"] } });
		expectInvalid(minted);
		expect(await env.DB.prepare("SELECT count(*) AS n FROM api_keys WHERE created_by = ?").bind(`apikey:${stale.id}`).first()).toEqual({ n: 0 });
		// Revoking a key made by a key leaves its maker.
		const maker = await createKey(t.base, t.admin.token, { name: "maker", permissions: manage });
		const made = await createKey(t.base, maker.key, { name: "made", permissions: ["org:products:read"] });
		expect((await call("DELETE", `${t.base}/api-keys/${made.id}`, { token: t.admin.token })).status).toBe(204);
		expect((await call("GET", `${t.base}/products`, { token: maker.key })).status).toBe(200);
	});

	it("Clerk's role.updated, role.deleted and permission.deleted narrow the keys the role's holders made, and reach the tenant's store at once", async () => {
		const t = await seedTenant({
			plan: "pro",
			members: { admin: "org:admin", lead: { permissions: ["org:api_keys:manage", "org:products:read", "org:products:write", "org:orders:read"] } },
		});
		const sent = captureTenantEvents(vi);
		const key = await createKey(t.base, t.lead.token, { name: "lead's", permissions: ["org:api_keys:manage", "org:products:read", "org:products:write", "org:orders:read"] });
		const made = await createKey(t.base, key.key, { name: "made by lead's", permissions: ["org:products:read", "org:products:write"] });
		const adminKey = await createKey(t.base, t.admin.token, { name: "admin's", permissions: ["org:products:write"] });
		const category = () => ({ name: "C", slug: `c-${crypto.randomUUID().slice(0, 8)}` });
		for (const token of [t.lead.token, key.key, made.key]) expect((await call("POST", `${t.base}/categories`, { token, body: category() })).status).toBe(201);
		const permissionsOf = async (id: string) =>
			JSON.parse((await env.DB.prepare("SELECT permissions FROM api_keys WHERE id = ?").bind(id).first<{ permissions: string }>())!.permissions) as string[];
		const role = (await env.DB.prepare("SELECT id FROM roles WHERE key = ?").bind(t.lead.role).first<{ id: string }>())!.id;
		const permission = async (k: string) => ({ id: (await env.DB.prepare("SELECT id FROM permissions WHERE key = ?").bind(k).first<{ id: string }>())!.id, key: k });
		const consume = async (type: string, data: Record<string, unknown>) => {
			const res = await deliver([messageFor(envelope(type, data))]);
			expect(res.retryMessages).toEqual([]);
			sent.length = 0;
		};

		// The role loses products:write in Clerk: the lead's writes and their keys' writes are refused, in the store too.
		const kept = await Promise.all(["org:api_keys:manage", "org:products:read", "org:orders:read"].map(permission));
		await consume("role.updated", {
			id: role,
			object: "role",
			key: t.lead.role,
			name: "Lead",
			permissions: kept.map((p) => ({ ...p, name: p.key, object: "permission" })),
			created_at: 1,
			updated_at: Date.now(),
		});
		resetApiKeyState();
		expect(await permissionsOf(key.id)).toEqual(["org:api_keys:manage", "org:orders:read", "org:products:read"]);
		expect(await permissionsOf(made.id)).toEqual(["org:products:read"]);
		for (const token of [t.lead.token, key.key, made.key]) expect((await call("POST", `${t.base}/categories`, { token, body: category() })).status).toBe(403);
		expect((await call("GET", `${t.base}/products`, { token: made.key })).status).toBe(200);
		expect(await permissionsOf(adminKey.id)).toEqual(["org:products:write"]);

		// orders:read is deleted from the catalogue: no key keeps it.
		await consume("permission.deleted", { id: kept[2]!.id, object: "permission", deleted: true });
		resetApiKeyState();
		expect(await permissionsOf(key.id)).toEqual(["org:api_keys:manage", "org:products:read"]);

		// The role is deleted: its holder holds nothing, nor do their keys; the store refuses the lead's reads at once.
		await consume("role.deleted", { id: role, object: "role", deleted: true });
		resetApiKeyState();
		expect(await permissionsOf(key.id)).toEqual([]);
		expect(await permissionsOf(made.id)).toEqual([]);
		for (const token of [t.lead.token, key.key, made.key]) expect((await call("GET", `${t.base}/products`, { token })).status).toBe(403);
		expect((await call("POST", `${t.base}/categories`, { token: adminKey.key, body: category() })).status).toBe(201);
	});

	it(`rotate: a new secret; the old one works for the ${ROTATION_GRACE_MS / 1000} s grace period, then 401`, async () => {
		const t = await seedTenant();
		const sent = captureTenantEvents(vi);
		const k = await createKey(t.base, t.admin.token);
		const rotated = await call<Created>("POST", `${t.base}/api-keys/${k.id}/rotate`, { token: t.admin.token });
		expect(rotated.status, rotated.text).toBe(200);
		expect(rotated.json.key).toMatch(API_KEY_PATTERN);
		expect(rotated.json.key).not.toBe(k.key);
		expect(rotated.json).toMatchObject({ id: k.id, last4: rotated.json.key.slice(-4), rotatedAt: now, previousKeyExpiresAt: now + ROTATION_GRACE_MS });

		expect((await call("GET", t.base, { token: rotated.json.key })).status).toBe(200);
		now += ROTATION_GRACE_MS - 1;
		expect((await call("GET", t.base, { token: k.key })).status).toBe(200);
		now += 1;
		expectInvalid(await call("GET", t.base, { token: k.key }));
		expect((await call("GET", t.base, { token: rotated.json.key })).status).toBe(200);

		// Rotating again ends the earlier secret's grace at once (only one previous secret is kept).
		const again = await call<Created>("POST", `${t.base}/api-keys/${k.id}/rotate`, { token: t.admin.token });
		expect((await call("GET", t.base, { token: again.json.key })).status).toBe(200);
		expect((await call("GET", t.base, { token: rotated.json.key })).status).toBe(200);
		const third = await call<Created>("POST", `${t.base}/api-keys/${k.id}/rotate`, { token: t.admin.token });
		expectInvalid(await call("GET", t.base, { token: rotated.json.key }));
		expect((await call("GET", t.base, { token: third.json.key })).status).toBe(200);
		expect(sent.filter((m) => m.kind === "audit").map((m) => (m as AuditMessage).action)).toEqual([
			"api_key.created",
			"api_key.rotated",
			"api_key.rotated",
			"api_key.rotated",
		]);
	});

	it("rotate is refused (403) to a caller without every permission of the key: rotating hands out its secret", async () => {
		const t = await seedTenant({ members: { admin: "org:admin", keyManager: { permissions: ["org:api_keys:manage", "org:products:read"] } } });
		const strong = await createKey(t.base, t.admin.token, { permissions: ["org:products:read", "org:products:write"] });
		const manager = await createKey(t.base, t.admin.token, { permissions: ["org:api_keys:manage"] });
		const product = { name: "Escalated", sku: "ESC-1", priceMinor: 100, currency: "INR" };
		expect((await call("POST", `${t.base}/products`, { token: manager.key, body: product })).status).toBe(403);

		for (const token of [manager.key, t.keyManager.token]) {
			const refused = await call<Problem>("POST", `${t.base}/api-keys/${strong.id}/rotate`, { token });
			expect(refused.status, refused.text).toBe(403);
			expect(refused.json.detail).toContain("org:products:write");
			expect(refused.text).not.toMatch(/sk_live_/);
		}
		// Nothing changed: the strong key's secret still works, no rotation was recorded.
		const still = await call<Key>("GET", `${t.base}/api-keys/${strong.id}`, { token: t.admin.token });
		expect(still.json.rotatedAt).toBeNull();
		expect((await call("POST", `${t.base}/products`, { token: strong.key, body: product })).status).toBe(201);
		// A key may rotate itself, and a caller holding the key's permissions may rotate it.
		const self = await call<Created>("POST", `${t.base}/api-keys/${manager.id}/rotate`, { token: manager.key });
		expect(self.status, self.text).toBe(200);
		expect((await call("POST", `${t.base}/api-keys/${strong.id}/rotate`, { token: t.admin.token })).status).toBe(200);
	});
});

describe("outgoing webhook events", () => {
	it("api_key.created/updated/rotated/revoked reach an endpoint subscribed to them, signed, never with the secret or its hash", async () => {
		// The tenant's receiving server is outside the Worker: stubbed at the network boundary.
		const receiver = fakeReceiver();
		stubNetwork(vi, { routes: receiver.routes });
		const t = await seedTenant({ plan: "pro" });
		// Captured before anything of the test is published: no event reaches the real queue and lands later.
		const sent = captureTenantEvents(vi);
		const register = async (path: string, eventTypes: string[]) => {
			const res = await call<Body<"POST /api/orgs/:orgId/webhooks">>("POST", `${t.base}/webhooks`, {
				token: t.admin.token,
				body: { url: `https://hooks.tenant.example.com/${path}`, eventTypes },
			});
			expect(res.status, res.text).toBe(201);
			return res.json;
		};
		const types = ["api_key.created", "api_key.updated", "api_key.rotated", "api_key.revoked"];
		const keysEndpoint = await register("keys", types);
		await register("orders", ["order.created"]);

		// A key that manages keys, so one change below is made by a key (actor apikey:<id>).
		const manager = await createKey(t.base, t.admin.token, { name: "manager", permissions: ["org:api_keys:manage", "org:products:read"] });
		const expiresAt = now + 86_400_000;
		const k = await createKey(t.base, t.admin.token, { name: "deploys", expiresAt });
		const renamed = await call<Key>("PATCH", `${t.base}/api-keys/${k.id}`, { token: t.admin.token, body: { name: "deploys-2", rateLimitPerMinute: 10 } });
		expect(renamed.status, renamed.text).toBe(200);
		const rotated = await call<Created>("POST", `${t.base}/api-keys/${k.id}/rotate`, { token: t.admin.token });
		expect(rotated.status, rotated.text).toBe(200);
		const revoked = await call("DELETE", `${t.base}/api-keys/${k.id}`, { token: manager.key });
		expect(revoked.status, revoked.text).toBe(204);

		// Each change publishes its audit entry and an outgoing event of the same name.
		const published = sent.splice(0).filter((m) => m.kind === "audit" || m.kind === "webhook.event");
		const named = (kind: string) => published.filter((m) => m.kind === kind).map((m) => (m.kind === "audit" ? m.action : m.kind === "webhook.event" ? m.type : ""));
		expect(named("webhook.event")).toEqual(["api_key.created", ...types]);
		expect(named("audit")).toEqual(named("webhook.event"));

		// The consumer applies them in the tenant's store (audit chain + fan-out to the subscribed endpoint only);
		// the store's alarm hands the deliveries to the queue, whose consumer sends them.
		expect((await deliverTenant(published)).explicitAcks).toHaveLength(published.length);
		await drainStore(t.orgId);
		const deliveries = sent.splice(0).filter((m) => m.kind === "webhook.deliver");
		expect(deliveries).toHaveLength(5);
		await deliverTenant(deliveries);
		expect(receiver.state.received).toHaveLength(5);
		expect(new Set(receiver.state.received.map((r) => r.url))).toEqual(new Set(["https://hooks.tenant.example.com/keys"]));

		const bodies = receiver.state.received.map((hit) => {
			// svix verifies the Standard Webhooks signature (it throws on a bad one).
			new Webhook(keysEndpoint.secret).verify(hit.body, {
				"webhook-id": hit.headers.get("webhook-id")!,
				"webhook-timestamp": hit.headers.get("webhook-timestamp")!,
				"webhook-signature": hit.headers.get("webhook-signature")!,
			});
			return { text: hit.body, json: JSON.parse(hit.body) as { id: string; type: string; data: Record<string, unknown> } };
		});
		const of = (type: string) => bodies.filter((b) => b.json.type === type && b.json.data.id === k.id).map((b) => b.json.data);
		const key = { id: k.id, prefix: "sk_live_", permissions: ["org:products:read"], expiresAt };
		expect(of("api_key.created")).toEqual([{ ...key, name: "deploys", last4: k.key.slice(-4), actor: t.admin.id }]);
		expect(of("api_key.updated")).toEqual([{ ...key, name: "deploys-2", last4: k.key.slice(-4), actor: t.admin.id }]);
		expect(of("api_key.rotated")).toEqual([{ ...key, name: "deploys-2", last4: rotated.json.key.slice(-4), actor: t.admin.id }]);
		expect(of("api_key.revoked")).toEqual([{ ...key, name: "deploys-2", last4: rotated.json.key.slice(-4), actor: `apikey:${manager.id}` }]);
		expect(bodies.filter((b) => b.json.data.id === manager.id).map((b) => b.json.type)).toEqual(["api_key.created"]);

		// Neither secret nor hash (current or previous) is in any payload.
		const row = await env.DB.prepare("SELECT hash FROM api_keys WHERE id = ?").bind(k.id).first<{ hash: string }>();
		const digest = async (s: string) =>
			[...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)))].map((b) => b.toString(16).padStart(2, "0")).join("");
		const forbidden = [k.key.slice(8), rotated.json.key.slice(8), manager.key.slice(8), await digest(k.key), await digest(rotated.json.key), row!.hash];
		for (const b of bodies) for (const f of forbidden) expect(b.text).not.toContain(f);
	});
});

describe("changes made by another isolate reach this one within 5 s (isolate cache, injected clock)", () => {
	// Written straight to D1, as another isolate's request would: this isolate's cache is not cleared.
	const elsewhere = {
		revoked: (id: string) => env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?").bind(now, id).run(),
		rotated: (id: string) =>
			env.DB.prepare("UPDATE api_keys SET hash = ?, previous_hash = NULL, previous_expires_at = NULL WHERE id = ?")
				.bind(`rotated-${id}`, id)
				.run(),
		"narrowed (permissions)": (id: string) => env.DB.prepare("UPDATE api_keys SET permissions = '[]' WHERE id = ?").bind(id).run(),
	};
	it.each(Object.keys(elsewhere) as (keyof typeof elsewhere)[])("%s", async (change) => {
		const t = await seedTenant();
		const k = await createKey(t.base, t.admin.token);
		const path = `${t.base}/products`;
		expect((await call("GET", path, { token: k.key })).status).toBe(200);
		const start = now;
		await elsewhere[change](k.id);
		now = start + API_KEY_CACHE_TTL_MS - 1;
		expect((await call("GET", path, { token: k.key })).status).toBe(200);
		now = start + API_KEY_CACHE_TTL_MS;
		expect((await call("GET", path, { token: k.key })).status).toBe(change.startsWith("narrowed") ? 403 : 401);
	});
});

describe("OpenAPI", () => {
	it("documents the key routes and, in the bearer scheme, the key format and principal model", async () => {
		const doc = await call<{
			paths: Record<string, Record<string, unknown>>;
			components: { securitySchemes: Record<string, { description?: string }> };
		}>("GET", "/api/openapi.json");
		expect(Object.keys(doc.json.paths)).toEqual(
			expect.arrayContaining(["/api/orgs/{orgId}/api-keys", "/api/orgs/{orgId}/api-keys/{keyId}", "/api/orgs/{orgId}/api-keys/{keyId}/rotate"]),
		);
		expect(Object.keys(doc.json.paths["/api/orgs/{orgId}/api-keys/{keyId}"] ?? {}).sort()).toEqual(["delete", "get", "patch"]);
		const bearer = doc.json.components.securitySchemes.bearer?.description ?? "";
		// Format and how scanners match it; principal model and /api/me; the delays.
		for (const s of ["sk_live_", "base62 of 32 random bytes", "sk_live_[0-9A-Za-z]{43}", "apikey:<id>", "MeApiKey", "role: null", "own bucket"]) {
			expect(bearer).toContain(s);
		}
		expect(bearer).toContain(`within ${API_KEY_CACHE_TTL_MS / 1000} s`);
		expect(bearer).toContain(`works for ${ROTATION_GRACE_MS / 1000} s more`);
		// Each change names the audit action and webhook event it publishes.
		const ops = doc.json.paths as Record<string, Record<string, { description?: string }>>;
		for (const [path, method, event] of [
			["/api/orgs/{orgId}/api-keys", "post", "api_key.created"],
			["/api/orgs/{orgId}/api-keys/{keyId}", "patch", "api_key.updated"],
			["/api/orgs/{orgId}/api-keys/{keyId}", "delete", "api_key.revoked"],
			["/api/orgs/{orgId}/api-keys/{keyId}/rotate", "post", "api_key.rotated"],
		] as const) {
			expect(ops[path]?.[method]?.description, `${method} ${path}`).toContain(`\`${event}\``);
		}
	});
});

describe("last_used_at", () => {
	it(`is written behind, at most once per ${LAST_USED_WRITE_INTERVAL_MS / 1000} s per key per isolate`, async () => {
		const t = await seedTenant();
		const k = await createKey(t.base, t.admin.token);
		const lastUsed = async () =>
			(await env.DB.prepare("SELECT last_used_at AS v FROM api_keys WHERE id = ?").bind(k.id).first<{ v: number | null }>())?.v;
		expect(await lastUsed()).toBeNull();
		const start = now;
		expect((await call("GET", t.base, { token: k.key, settle: true })).status).toBe(200);
		expect(await lastUsed()).toBe(start);
		for (const dt of [1_000, 30_000, LAST_USED_WRITE_INTERVAL_MS - 1]) {
			now = start + dt;
			expect((await call("GET", t.base, { token: k.key, settle: true })).status).toBe(200);
			expect(await lastUsed()).toBe(start);
		}
		now = start + LAST_USED_WRITE_INTERVAL_MS;
		expect((await call("GET", t.base, { token: k.key, settle: true })).status).toBe(200);
		expect(await lastUsed()).toBe(start + LAST_USED_WRITE_INTERVAL_MS);
		const shown = await call<Key>("GET", `${t.base}/api-keys/${k.id}`, { token: t.admin.token });
		expect(shown.json.lastUsedAt).toBe(start + LAST_USED_WRITE_INTERVAL_MS);
	});
});
