import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { RateLimiter } from "../../src/durable-objects/rate-limiter";
import { leaseSize } from "../../src/services/rate-limit";
import { uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { callWithEnv } from "../helpers/request";
import { storeOf } from "../helpers/store";
import { seedTenant } from "../helpers/tenant";
import { TEST_OPERATOR } from "../helpers/vars";

const stubFor = (key: string) => env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(key));

/** Counts the takes a tenant's store answers from here on (its buckets: the tenant's, members', keys'). */
async function countStoreTakes(orgId: string): Promise<{ calls: number }> {
	const counter = { calls: 0 };
	await runInDurableObject(storeOf(orgId), (store) => {
		const limiter = (store as unknown as { limiter: { take: (...a: unknown[]) => unknown } }).limiter;
		const take = limiter.take.bind(limiter);
		limiter.take = (...a) => {
			counter.calls++;
			return take(...a);
		};
	});
	return counter;
}

/** Two admins: per-user limits are checked across them. */
const ADMINS = { a: "org:admin", b: "org:admin" } as const;

describe("RateLimiter Durable Object", () => {
	it("token bucket: grants up to the limit, then refuses with a retry time; refills over the window", async () => {
		const stub = stubFor(uid("unit"));
		const rule = { limit: 5, windowMs: 60_000, want: 1 };
		const results = [];
		for (let i = 0; i < 6; i++) results.push(await stub.take(rule));
		expect(results.map((r) => r.granted)).toEqual([1, 1, 1, 1, 1, 0]);
		expect(results[4]).toMatchObject({ remaining: 0, limit: 5 });
		expect(results[5]!.retryAfterMs).toBeGreaterThan(11_000);
		expect(results[5]!.retryAfterMs).toBeLessThanOrEqual(12_000);
		// Move the bucket's clock back 30 s: half the window refills half the bucket.
		await runInDurableObject(stub, (obj: RateLimiter) => {
			(obj as unknown as { bucket: { updatedAt: number } }).bucket.updatedAt -= 30_000;
		});
		const after = await stub.take({ ...rule, want: 3 });
		expect(after.granted).toBe(0); // 2.5 tokens: all-or-nothing refuses 3
		expect((await stub.take({ ...rule, want: 3, partial: true })).granted).toBe(2);
	});

	it("state survives in SQLite storage and the alarm deletes it once idle and full", async () => {
		const stub = stubFor(uid("alarm"));
		await stub.take({ limit: 3, windowMs: 60_000, want: 2 });
		const stored = await runInDurableObject(stub, (_obj, state) => state.storage.sql.exec("SELECT tokens FROM bucket").toArray());
		expect(stored).toEqual([{ tokens: 1 }]);
		// Not yet refilled: the alarm keeps the state and re-arms itself.
		expect(await runDurableObjectAlarm(stub)).toBe(true);
		const kept = await runInDurableObject(stub, async (_obj, state) => ({
			rows: state.storage.sql.exec("SELECT count(*) AS n FROM bucket").one(),
			alarm: await state.storage.getAlarm(),
		}));
		expect(kept.rows).toEqual({ n: 1 });
		expect(kept.alarm).toBeGreaterThan(Date.now());
		// Two minutes idle: full again, so the alarm deletes everything.
		await runInDurableObject(stub, (obj: RateLimiter) => {
			(obj as unknown as { bucket: { updatedAt: number } }).bucket.updatedAt -= 120_000;
		});
		expect(await runDurableObjectAlarm(stub)).toBe(true);
		const after = await runInDurableObject(stub, (_obj, state) =>
			state.storage.sql.exec("SELECT count(*) AS n FROM sqlite_master WHERE name = 'bucket'").one(),
		);
		expect(after).toEqual({ n: 0 });
		// The object keeps working afterwards, with a fresh bucket.
		expect(await stub.take({ limit: 3, windowMs: 60_000, want: 1 })).toMatchObject({ granted: 1, remaining: 2 });
	});
});

describe("strict mode", () => {
	it("with a limit of N and M > N simultaneous requests for one tenant, exactly N pass", async () => {
		const N = 10;
		const M = 30;
		const t = await seedTenant({ limits: { rateLimitPerMinute: N, userRateLimitPerMinute: 1_000 }, members: ADMINS });
		const tokens = [t.a.token, t.b.token];
		const results = await Promise.all(
			Array.from({ length: M }, (_, i) =>
				callWithEnv({ RATE_LIMIT_MODE: "strict" }, "GET", `/api/orgs/${t.orgId}`, { token: tokens[i % 2] }),
			),
		);
		const ok = results.filter((r) => r.status === 200);
		const limited = results.filter((r) => r.status === 429);
		expect(ok).toHaveLength(N);
		expect(limited).toHaveLength(M - N);
		for (const r of ok) {
			expect(r.headers.get("ratelimit-limit")).toBe(String(N));
			expect(Number(r.headers.get("ratelimit-remaining"))).toBeLessThan(N);
			expect(Number(r.headers.get("ratelimit-reset"))).toBeGreaterThan(0);
		}
		const refused = limited[0]!;
		expect(refused.headers.get("content-type")).toBe("application/problem+json");
		expect(refused.json).toMatchObject({ status: 429, title: "Too many requests" });
		expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
		expect(refused.headers.get("ratelimit-remaining")).toBe("0");
		expect(refused.headers.get("ratelimit-limit")).toBe(String(N));
	});

	it("limits each user within the tenant separately", async () => {
		const t = await seedTenant({ limits: { rateLimitPerMinute: 1_000, userRateLimitPerMinute: 3 }, members: ADMINS });
		const [a, b] = [t.a.token, t.b.token];
		const statusesA = [];
		for (let i = 0; i < 4; i++)
			statusesA.push((await callWithEnv({ RATE_LIMIT_MODE: "strict" }, "GET", `/api/orgs/${t.orgId}`, { token: a })).status);
		expect(statusesA).toEqual([200, 200, 200, 429]);
		expect((await callWithEnv({ RATE_LIMIT_MODE: "strict" }, "GET", `/api/orgs/${t.orgId}`, { token: b })).status).toBe(200);
	});

	it.each(["strict", "lease"] as const)(
		"%s: a member refused by their own bucket spends nothing of the tenant's; the others keep their share",
		async (mode) => {
			const t = await seedTenant({ limits: { rateLimitPerMinute: 30, userRateLimitPerMinute: 10 }, members: ADMINS });
			const get = (token: string) => callWithEnv({ RATE_LIMIT_MODE: mode }, "GET", `/api/orgs/${t.orgId}`, { token });
			const a: number[] = [];
			for (let i = 0; i < 40; i++) a.push((await get(t.a.token)).status);
			expect(a.filter((s) => s === 200)).toHaveLength(10);
			expect(a.filter((s) => s === 429)).toHaveLength(30);
			// Member a's 30 refusals cost the tenant nothing: 20 of its 30 tokens are left for b.
			const b: number[] = [];
			for (let i = 0; i < 10; i++) b.push((await get(t.b.token)).status);
			expect(b).toEqual(Array(10).fill(200));
		},
	);

	it.each(["strict", "lease"] as const)(
		"%s: a store tenant's routes spend one budget, whether its store or the Worker serves them",
		async (mode) => {
			const t = await seedTenant({ limits: { rateLimitPerMinute: 1_000, userRateLimitPerMinute: 4 }, members: ADMINS });
			const takes = await countStoreTakes(t.orgId);
			const statuses: number[] = [];
			// products and categories: served by the store; the organization and its members: by the Worker.
			for (const path of ["/products", "", "/categories", "/members", "/products", ""]) {
				statuses.push((await callWithEnv({ RATE_LIMIT_MODE: mode }, "GET", `${t.base}${path}`, { token: t.a.token })).status);
			}
			expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
			// The Worker took from the store's buckets (the member's, then the tenant's): no RateLimiter object was asked.
			expect(takes.calls).toBeGreaterThanOrEqual(4);
			expect((await stubFor(`org:${t.orgId}:user:${t.a.id}`).stats()).calls).toBe(0);
		},
	);

	it("limits come from the plan unless the organization overrides them", async () => {
		const free = await seedTenant({ plan: "free", members: ADMINS });
		const pro = await seedTenant({ plan: "pro", members: ADMINS });
		const limitOf = async (x: { orgId: string; a: { token: string } }) =>
			(
				await callWithEnv({ RATE_LIMIT_MODE: "strict" }, "GET", `/api/orgs/${x.orgId}`, {
					token: x.a.token,
				})
			).headers.get("ratelimit-limit");
		// The per-user bucket binds first: 60/min on free, 300/min on pro.
		expect(await limitOf(free)).toBe("60");
		expect(await limitOf(pro)).toBe("300");
	});
});

describe("lease mode", () => {
	it("sequential: admits exactly the limit, with about one DO call per lease", async () => {
		const N = 40;
		const t = await seedTenant({ limits: { rateLimitPerMinute: N, userRateLimitPerMinute: 10_000 }, members: ADMINS });
		const token = t.a.token;
		const takes = await countStoreTakes(t.orgId);
		let admitted = 0;
		for (let i = 0; i < 3 * N; i++) {
			if ((await callWithEnv({ RATE_LIMIT_MODE: "lease" }, "GET", `/api/orgs/${t.orgId}`, { token })).status === 200) admitted++;
		}
		// Refill during the test is at most a token or two (40/min); overshoot is 0 by construction.
		expect(admitted).toBeGreaterThanOrEqual(N);
		expect(admitted).toBeLessThanOrEqual(N + 2);
		// The tenant's buckets are its store's. Per bucket (the member's, whose 10,000 tokens stay leased, and the
		// tenant's): one take per lease of leaseSize(limit) tokens, plus the refusal that blocks the key locally.
		expect(takes.calls).toBeGreaterThan(0);
		expect(takes.calls).toBeLessThanOrEqual(Math.ceil(admitted / leaseSize(N)) + Math.ceil(admitted / leaseSize(10_000)) + 4);
	});

	it("concurrent: never more than the limit; tokens leased by concurrent refills are pooled, not lost", async () => {
		const N = 40;
		const t = await seedTenant({ limits: { rateLimitPerMinute: N, userRateLimitPerMinute: 10_000 }, members: ADMINS });
		const token = t.a.token;
		const run = () => callWithEnv({ RATE_LIMIT_MODE: "lease" }, "GET", `/api/orgs/${t.orgId}`, { token });
		const burst = await Promise.all(Array.from({ length: 3 * N }, run));
		const inBurst = burst.filter((r) => r.status === 200).length;
		expect(inBurst).toBeLessThanOrEqual(N + 2);
		let after = 0;
		for (let i = 0; i < N; i++) if ((await run()).status === 200) after++;
		expect(inBurst + after).toBeGreaterThanOrEqual(N);
		expect(inBurst + after).toBeLessThanOrEqual(N + 2);
	});

	it("a refusal's Retry-After is the wait for one token, as in strict mode (not for a whole lease)", async () => {
		const t = await seedTenant({ limits: { rateLimitPerMinute: 10_000, userRateLimitPerMinute: 60 }, members: ADMINS });
		expect(leaseSize(60)).toBe(3);
		let refused: Awaited<ReturnType<typeof callWithEnv>> | undefined;
		for (let i = 0; i < 80 && !refused; i++) {
			const res = await callWithEnv({ RATE_LIMIT_MODE: "lease" }, "GET", `/api/orgs/${t.orgId}`, { token: t.a.token });
			if (res.status === 429) refused = res;
		}
		expect(refused?.status).toBe(429);
		expect(refused?.headers.get("retry-after")).toBe("1");
		expect(refused?.headers.get("ratelimit-limit")).toBe("60");
	});

	it("writes stay strict in lease mode", async () => {
		// The replay route is a POST: each call is one atomic take in the operator's bucket.
		const token = await signToken({ userId: TEST_OPERATOR });
		const before = (await stubFor(`user:${TEST_OPERATOR}`).stats()).calls;
		for (let i = 0; i < 3; i++) {
			const res = await callWithEnv({ RATE_LIMIT_MODE: "lease" }, "POST", "/api/admin/events/msg_missing/replay", { token });
			expect(res.status).toBe(404);
			expect(res.headers.get("ratelimit-limit")).toBe("600");
		}
		expect((await stubFor(`user:${TEST_OPERATOR}`).stats()).calls - before).toBe(3);
	});
});

describe("public routes and failure modes", () => {
	it("health and webhooks are limited per client IP with their own budget", async () => {
		const ip = `203.0.113.${Math.floor(Math.random() * 200)}`;
		const h1 = await callWithEnv({ RATE_LIMIT_MODE: "strict" }, "GET", "/api/health", { headers: { "cf-connecting-ip": ip } });
		const h2 = await callWithEnv({ RATE_LIMIT_MODE: "strict" }, "GET", "/api/health", { headers: { "cf-connecting-ip": ip } });
		expect(h1.headers.get("ratelimit-limit")).toBe("600");
		expect(Number(h2.headers.get("ratelimit-remaining"))).toBe(Number(h1.headers.get("ratelimit-remaining")) - 1);
		const other = await callWithEnv({ RATE_LIMIT_MODE: "strict" }, "GET", "/api/health", {
			headers: { "cf-connecting-ip": "198.51.100.7" },
		});
		expect(Number(other.headers.get("ratelimit-remaining"))).toBeGreaterThan(Number(h2.headers.get("ratelimit-remaining")));
		const wh = await callWithEnv({ RATE_LIMIT_MODE: "strict" }, "POST", "/api/webhooks/clerk", {
			headers: { "cf-connecting-ip": ip },
		});
		expect(wh.status).toBe(401);
		expect(wh.headers.get("ratelimit-limit")).toBe("600");
	});

	it("if the Durable Object is unreachable: reads fail open, writes fail closed (503)", async () => {
		const broken = {
			idFromName: () => ({}) as DurableObjectId,
			get: () => ({ take: () => Promise.reject(new Error("Durable Object unavailable")) }),
		};
		const t = await seedTenant({ members: ADMINS });
		const read = await callWithEnv({ RATE_LIMIT_MODE: "strict", RATE_LIMITER: broken as never }, "GET", "/api/me", { token: t.a.token });
		expect(read.status, read.text).toBe(200);
		// A store tenant's buckets are its store's: when its take fails, a read the Worker serves fails open too.
		await runInDurableObject(storeOf(t.orgId), (store) => {
			(store as unknown as { limiter: { take: () => never } }).limiter.take = () => {
				throw new Error("store unavailable");
			};
		});
		const tenantRead = await callWithEnv({ RATE_LIMIT_MODE: "strict" }, "GET", t.base, { token: t.a.token });
		expect(tenantRead.status, tenantRead.text).toBe(200);
		expect(tenantRead.headers.get("ratelimit-limit")).toBeNull();
		const write = await callWithEnv(
			{ RATE_LIMIT_MODE: "strict", RATE_LIMITER: broken as never },
			"POST",
			"/api/admin/events/x/replay",
			{
				token: await signToken({ userId: TEST_OPERATOR }),
			},
		);
		expect(write.status, write.text).toBe(503);
		expect(write.headers.get("retry-after")).toBe("1");
	});
});
