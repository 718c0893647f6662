import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { resetMeterState } from "../../src/middleware/meter";
import { PLANS } from "../../src/services/plans";
import { seedTenant } from "../helpers/factories";
import { signToken, stubJwks } from "../helpers/jwt";
import { call } from "../helpers/request";

beforeEach(() => {
	stubJwks(vi);
	resetMeterState();
});
afterEach(() => {
	vi.restoreAllMocks();
});

const usageStub = (orgId: string) => env.USAGE.get(env.USAGE.idFromName(`usage:${orgId}`));

async function waitFor<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 6_000): Promise<T> {
	const end = Date.now() + ms;
	let v = await fn();
	while (!ok(v) && Date.now() < end) {
		await new Promise((r) => setTimeout(r, 100));
		v = await fn();
	}
	return v;
}

describe("usage metering", () => {
	it("counts API calls per organization and day; GET /usage reports the month against the plan quota", async () => {
		const t = await seedTenant();
		const token = await signToken({ userId: t.admin });
		for (let i = 0; i < 4; i++) expect((await call("GET", `/api/orgs/${t.orgId}`, { token })).status).toBe(200);
		// The isolate batches counts: the first call is sent at once, the rest with the next flush (≥ 1 s later).
		// (On a slow machine a 1 s flush may already have happened; never all four one by one.)
		expect((await usageStub(t.orgId).summary()).used).toBeLessThan(4);
		await new Promise((r) => setTimeout(r, 1_100));
		const usage = await call("GET", `/api/orgs/${t.orgId}/usage`, { token });
		expect(usage.status, usage.text).toBe(200);
		const summary = await waitFor(
			() => usageStub(t.orgId).summary(),
			(x) => x.used >= 5,
		);
		const today = new Date().toISOString().slice(0, 10);
		expect(summary).toEqual({ month: today.slice(0, 7), used: 5, daily: [{ day: today, count: 5 }] });
		expect(usage.json).toMatchObject({ organizationId: t.orgId, metric: "api_calls", quota: PLANS.free.limits.monthlyApiQuota });
		expect(usage.json.used).toBeGreaterThanOrEqual(1);
		expect(usage.json.remaining).toBe(usage.json.quota - usage.json.used);
		expect(usage.json.period.month).toBe(today.slice(0, 7));
	});

	it("writes daily rollups behind to D1 from the Durable Object's alarm, not per request", async () => {
		const t = await seedTenant();
		const token = await signToken({ userId: t.admin });
		for (let i = 0; i < 3; i++) await call("GET", `/api/orgs/${t.orgId}`, { token });
		await new Promise((r) => setTimeout(r, 1_100));
		await call("GET", `/api/orgs/${t.orgId}`, { token });
		await waitFor(
			() => usageStub(t.orgId).summary(),
			(s) => s.used >= 4,
		);
		const rollup = () =>
			env.DB.prepare("SELECT count FROM usage_daily WHERE organization_id = ?").bind(t.orgId).first<{ count: number }>();
		expect(await rollup()).toBeNull();
		expect(await runDurableObjectAlarm(usageStub(t.orgId))).toBe(true);
		expect(await rollup()).toEqual({ count: 4 });
	});

	it("over the monthly quota answers 429 problem+json with Retry-After", async () => {
		const t = await seedTenant();
		await env.DB.prepare("UPDATE organizations SET monthly_quota = 5 WHERE id = ?").bind(t.orgId).run();
		const token = await signToken({ userId: t.admin });
		const statuses = [];
		for (let i = 0; i < 7; i++) statuses.push((await call("GET", `/api/orgs/${t.orgId}`, { token })).status);
		expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
		const refused = await call("GET", `/api/orgs/${t.orgId}/members`, { token });
		expect(refused.status).toBe(429);
		expect(refused.json).toMatchObject({ status: 429, code: "QUOTA_EXCEEDED", title: "Monthly quota exceeded" });
		expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
	});

	it("crossing 50/80/100% of the quota emits each alert once (audit entry and outgoing event)", async () => {
		const t = await seedTenant();
		const stub = usageStub(t.orgId);
		const add = (count: number) => stub.add({ organizationId: t.orgId, count, quota: 100 });
		const alerts = [];
		for (const n of [40, 15, 30, 5, 20, 5, 50]) alerts.push((await add(n)).alerts);
		expect(alerts).toEqual([[], [50], [80], [], [100], [], []]);
		// Through the real tenant-events queue into the audit log, exactly once each.
		const rows = await waitFor(
			async () =>
				(
					await env.DB.prepare(
						"SELECT after FROM audit_logs WHERE organization_id = ? AND action = 'usage.threshold_reached' ORDER BY seq",
					)
						.bind(t.orgId)
						.all<{ after: string }>()
				).results,
			(r) => r.length >= 3,
		);
		expect(rows.map((r) => JSON.parse(r.after).threshold)).toEqual([50, 80, 100]);
	});
});
