import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { METER_FLUSH_MS, resetMeterState, setMeterClock } from "../../src/middleware/meter";
import { PLANS } from "../../src/services/plans";
import { type Body, call, type Problem } from "../helpers/request";
import { storeSql } from "../helpers/store";
import { seedTenant } from "../helpers/tenant";
import { eventually } from "../helpers/wait";

/** The meter's clock, frozen per test: a test steps it past the flush window instead of sleeping. */
let now = Date.now();
beforeEach(() => {
	resetMeterState();
	now = Date.now();
	setMeterClock(() => now);
});

const usageStub = (orgId: string) => env.USAGE.get(env.USAGE.idFromName(`usage:${orgId}`));

describe("usage metering", () => {
	it("counts API calls per organization and day; GET /usage reports the month against the plan quota", async () => {
		const t = await seedTenant();
		const token = t.admin.token;
		for (let i = 0; i < 4; i++) expect((await call("GET", t.base, { token })).status).toBe(200);
		// The isolate batches counts: the first call is sent at once, the rest with the next flush (≥ 1 s later).
		expect((await usageStub(t.orgId).summary()).used).toBe(1);
		now += METER_FLUSH_MS;
		// This call flushes the pending counts off the hot path (waitUntil); `settle` waits for that.
		const usage = await call<Body<"GET /api/orgs/:orgId/usage">>("GET", `${t.base}/usage`, { token, settle: true });
		expect(usage.status, usage.text).toBe(200);
		const summary = await usageStub(t.orgId).summary();
		const today = new Date(now).toISOString().slice(0, 10);
		expect(summary).toEqual({ month: today.slice(0, 7), used: 5, daily: [{ day: today, count: 5 }] });
		expect(usage.json).toMatchObject({ organizationId: t.orgId, metric: "api_calls", quota: PLANS.free.limits.monthlyApiQuota });
		expect(usage.json.used).toBeGreaterThanOrEqual(1);
		expect(usage.json.remaining).toBe(usage.json.quota - usage.json.used);
		expect(usage.json.period.month).toBe(today.slice(0, 7));
	});

	it("writes daily rollups behind to D1 from the Durable Object's alarm, not per request", async () => {
		const t = await seedTenant();
		const token = t.admin.token;
		for (let i = 0; i < 3; i++) await call("GET", t.base, { token });
		now += METER_FLUSH_MS;
		await call("GET", t.base, { token, settle: true });
		expect((await usageStub(t.orgId).summary()).used).toBe(4);
		const rollup = () =>
			env.DB.prepare("SELECT count FROM usage_daily WHERE organization_id = ?").bind(t.orgId).first<{ count: number }>();
		expect(await rollup()).toBeNull();
		expect(await runDurableObjectAlarm(usageStub(t.orgId))).toBe(true);
		expect(await rollup()).toEqual({ count: 4 });
	});

	it("calls within the flush window are not sent one by one", async () => {
		const t = await seedTenant();
		for (let i = 0; i < 5; i++) await call("GET", t.base, { token: t.admin.token, settle: true });
		expect((await usageStub(t.orgId).summary()).used).toBe(1);
		now += METER_FLUSH_MS - 1;
		await call("GET", t.base, { token: t.admin.token, settle: true });
		expect((await usageStub(t.orgId).summary()).used).toBe(1);
		now += 1;
		await call("GET", t.base, { token: t.admin.token, settle: true });
		expect((await usageStub(t.orgId).summary()).used).toBe(7);
	});

	it("over the monthly quota answers 429 problem+json with Retry-After", async () => {
		const t = await seedTenant({ limits: { monthlyApiQuota: 5 } });
		const token = t.admin.token;
		const statuses = [];
		for (let i = 0; i < 7; i++) statuses.push((await call("GET", t.base, { token })).status);
		expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
		const refused = await call<Problem>("GET", `${t.base}/members`, { token });
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
		// Through the real tenant-events queue into the audit log of the tenant's store, exactly once each:
		// poll with a deadline.
		const rows = await eventually(
			() => storeSql<{ after: string }>(t.orgId, "SELECT after FROM audit_logs WHERE action = 'usage.threshold_reached' ORDER BY seq"),
			(r) => r.length >= 3,
		);
		expect(rows.map((r) => JSON.parse(r.after).threshold)).toEqual([50, 80, 100]);
	});
});
