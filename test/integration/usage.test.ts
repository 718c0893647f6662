import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from "vitest";
import { METER_FLUSH_MS, resetMeterState, setMeterClock } from "../../src/middleware/meter";
import { PLANS } from "../../src/services/plans";
import { WRITE_BEHIND_MS } from "../../src/services/usage-ledger";
import { forgetStoreRoute } from "../../src/tenant-store/directory";
import { setStoreClock, type TenantStoreObject } from "../../src/tenant-store/object";
import { type Body, call, type Problem } from "../helpers/request";
import { inStore, runStoreAlarm, storeOf, storeSql } from "../helpers/store";
import { seedTenant } from "../helpers/tenant";

/** The meter's and the store's clock, frozen per test: a test steps them instead of sleeping. */
let now = Date.now();
beforeEach(() => {
	resetMeterState();
	now = Date.now();
	setMeterClock(() => now);
	setStoreClock(() => now);
});
afterEach(() => setStoreClock());

const today = () => new Date(now).toISOString().slice(0, 10);
const rollup = (orgId: string) =>
	env.DB.prepare("SELECT day, count FROM usage_daily WHERE organization_id = ? AND metric = 'api_calls'").bind(orgId).all<{ day: string; count: number }>();
const thresholdAudits = async (orgId: string) =>
	(await storeSql<{ after: string }>(orgId, "SELECT after FROM audit_logs WHERE action = 'usage.threshold_reached' ORDER BY seq")).map(
		(r) => JSON.parse(r.after).threshold as number,
	);

describe("usage metering in the tenant store", () => {
	it("counts every call at once, the store's own routes and the Worker's tenant routes alike; GET /usage reports the month", async () => {
		const t = await seedTenant();
		const token = t.admin.token;
		for (let i = 0; i < 3; i++) expect((await call("GET", t.base, { token })).status).toBe(200); // served by the Worker
		for (let i = 0; i < 2; i++) expect((await call("GET", `${t.base}/products`, { token })).status).toBe(200); // served in the store
		// No batching and no flush window: the store holds the exact count after each call.
		expect(await storeOf(t.orgId).usageSummary()).toEqual({ month: today().slice(0, 7), used: 5, daily: [{ day: today(), count: 5 }] });
		const usage = await call<Body<"GET /api/orgs/:orgId/usage">>("GET", `${t.base}/usage`, { token });
		expect(usage.status, usage.text).toBe(200);
		// The report is read after its own call was counted.
		expect(usage.json).toMatchObject({ organizationId: t.orgId, metric: "api_calls", used: 6, quota: PLANS.free.limits.monthlyApiQuota });
		expect(usage.json.remaining).toBe(usage.json.quota - 6);
		expect(usage.json.daily).toEqual([{ day: today(), count: 6 }]);
		expect(usage.json.period.month).toBe(today().slice(0, 7));
	});

	it("the quota is exact under concurrency: of 24 parallel calls against a quota of 7, exactly 7 are served", async () => {
		const t = await seedTenant({ limits: { monthlyApiQuota: 7, rateLimitPerMinute: 1000, userRateLimitPerMinute: 1000 } });
		const token = t.admin.token;
		const paths = Array.from({ length: 24 }, (_, i) => (i % 2 === 0 ? `${t.base}/products` : t.base));
		const results = await Promise.all(paths.map((p) => call<Problem>("GET", p, { token })));
		expect(results.filter((r) => r.status === 200)).toHaveLength(7);
		const refused = results.filter((r) => r.status !== 200);
		expect(refused.map((r) => r.json.code)).toEqual(refused.map(() => "QUOTA_EXCEEDED"));
		expect((await storeOf(t.orgId).usageSummary()).used).toBe(7);
	});

	it("over the monthly quota answers 429 problem+json with Retry-After until the next month", async () => {
		const t = await seedTenant({ limits: { monthlyApiQuota: 5 } });
		const token = t.admin.token;
		const statuses = [];
		for (let i = 0; i < 7; i++) statuses.push((await call("GET", t.base, { token })).status);
		expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
		for (const path of [`${t.base}/members`, `${t.base}/products`]) {
			const refused = await call<Problem>("GET", path, { token });
			expect(refused.status).toBe(429);
			expect(refused.json).toMatchObject({ status: 429, code: "QUOTA_EXCEEDED", title: "Monthly quota exceeded" });
			const d = new Date(now);
			expect(Number(refused.headers.get("retry-after"))).toBe(Math.ceil((Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) - now) / 1000));
		}
	});

	it("writes daily rollups behind to D1 from the store's alarm once they are WRITE_BEHIND_MS old, not per request", async () => {
		const t = await seedTenant();
		for (let i = 0; i < 3; i++) await call("GET", `${t.base}/products`, { token: t.admin.token });
		expect((await rollup(t.orgId)).results).toEqual([]);
		now += WRITE_BEHIND_MS - 1;
		await runDurableObjectAlarm(storeOf(t.orgId));
		expect((await rollup(t.orgId)).results).toEqual([]);
		now += 1;
		await runDurableObjectAlarm(storeOf(t.orgId));
		expect((await rollup(t.orgId)).results).toEqual([{ day: today(), count: 3 }]);
	});

	it("counts reach the store's SQLite at most once a second (a read request writes no row of its own), at the latest by the alarm", async () => {
		const t = await seedTenant();
		const persisted = async () => (await storeSql<{ count: number }>(t.orgId, "SELECT count FROM usage_counts"))[0]?.count;
		for (let i = 0; i < 3; i++) expect((await call("GET", `${t.base}/products`, { token: t.admin.token })).status).toBe(200);
		// The first call wrote; the next two, within the second, are held in the object's memory…
		expect(await persisted()).toBe(1);
		// …where the quota check reads them, and the alarm is set to write them a second later.
		expect(await runInDurableObject(storeOf(t.orgId), (_o, state) => state.storage.getAlarm())).toBe(now + 1_000);
		await runDurableObjectAlarm(storeOf(t.orgId));
		expect(await persisted()).toBe(3);
		// A call a second later writes at once again.
		now += 1_000;
		await call("GET", `${t.base}/products`, { token: t.admin.token });
		expect(await persisted()).toBe(4);
	});

	it("crossing 50/80/100% of the quota records each alert once, as an audit entry in the store's chain", async () => {
		const t = await seedTenant();
		const store = storeOf(t.orgId);
		const alerts = [];
		for (const count of [40, 15, 30, 5, 20]) alerts.push((await store.meter(t.orgId, { count, quota: 100, at: now })).alerts);
		expect(alerts).toEqual([[], [50], [80], [], [100]]);
		// At the quota: refused, nothing counted, no alert again.
		expect(await store.meter(t.orgId, { count: 1, quota: 100, at: now })).toMatchObject({ allowed: false, monthUsed: 110, alerts: [] });
		expect(await thresholdAudits(t.orgId)).toEqual([50, 80, 100]);
	});

	it("an alert whose events cannot be applied at once (the fan-out's D1 read failing) waits in the outbox: the call is counted and answered, the alarm applies it", async () => {
		const t = await seedTenant({ plan: "pro" });
		const store = storeOf(t.orgId);
		expect((await store.meter(t.orgId, { count: 40, quota: 100, at: now })).allowed).toBe(true);
		let down!: MockInstance<TenantStoreObject["apply"]>;
		await inStore(t.orgId, (object) => {
			down = vi.spyOn(object, "apply").mockRejectedValue(new Error("D1 unreachable"));
		});
		const crossing = await store.meter(t.orgId, { count: 15, quota: 100, at: now });
		down.mockRestore();
		expect(crossing).toMatchObject({ allowed: true, monthUsed: 55, alerts: [50] });
		expect(await storeSql(t.orgId, "SELECT count(*) AS n FROM outbox WHERE status = 'pending'")).toEqual([{ n: 2 }]);
		await runStoreAlarm(t.orgId);
		expect(await thresholdAudits(t.orgId)).toEqual([50]);
		expect(await storeSql(t.orgId, "SELECT count(*) AS n FROM outbox WHERE body LIKE '%usage.threshold_reached%'")).toEqual([{ n: 0 }]);
	});

	it("a store starts from the rollups its tenant's UsageCounter wrote: counted on, never billed or announced twice", async () => {
		const t = await seedTenant({ limits: { monthlyApiQuota: 100 } });
		// What the UsageCounter had written behind for this tenant before its store counted (this month: 79).
		await env.DB.prepare("INSERT INTO usage_daily (organization_id, day, metric, count, updated_at) VALUES (?, ?, 'api_calls', 79, ?)")
			.bind(t.orgId, today(), now)
			.run();
		expect((await call("GET", t.base, { token: t.admin.token })).status).toBe(200);
		expect((await storeOf(t.orgId).usageSummary()).used).toBe(80);
		// 50% was crossed under the old counter (announced there); 80% is crossed here, once.
		expect(await thresholdAudits(t.orgId)).toEqual([80]);
		// The seeded 79 count as reported to Stripe; only the growth is left to report.
		expect(await storeSql(t.orgId, "SELECT month, reported FROM usage_meter_reports")).toEqual([{ month: today().slice(0, 7), reported: 79 }]);
	});
});

describe("usage metering of a tenant still on the shared tables (UsageCounter)", () => {
	const usageStub = (orgId: string) => env.USAGE.get(env.USAGE.idFromName(`usage:${orgId}`));
	async function legacyTenant() {
		const t = await seedTenant();
		await env.DB.prepare("UPDATE organizations SET store_state = 'd1' WHERE id = ?").bind(t.orgId).run();
		forgetStoreRoute(t.orgId);
		return t;
	}

	it("batches an isolate's calls: sent at most every METER_FLUSH_MS, written behind to D1 by the object's alarm", async () => {
		const t = await legacyTenant();
		for (let i = 0; i < 5; i++) await call("GET", t.base, { token: t.admin.token, settle: true });
		expect((await usageStub(t.orgId).summary()).used).toBe(1);
		now += METER_FLUSH_MS - 1;
		await call("GET", t.base, { token: t.admin.token, settle: true });
		expect((await usageStub(t.orgId).summary()).used).toBe(1);
		now += 1;
		await call("GET", t.base, { token: t.admin.token, settle: true });
		expect((await usageStub(t.orgId).summary()).used).toBe(7);
		const usage = await call<Body<"GET /api/orgs/:orgId/usage">>("GET", `${t.base}/usage`, { token: t.admin.token });
		expect(usage.json.used).toBe(7);
		expect((await rollup(t.orgId)).results).toEqual([]);
		expect(await runDurableObjectAlarm(usageStub(t.orgId))).toBe(true);
		expect((await rollup(t.orgId)).results).toEqual([{ day: new Date().toISOString().slice(0, 10), count: 7 }]);
	});
});
