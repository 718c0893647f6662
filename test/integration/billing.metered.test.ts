import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { usageCounter } from "../../src/services/usage";
import { METER_RETRY_MS, WRITE_BEHIND_MS } from "../../src/services/usage-ledger";
import { forgetStoreRoute } from "../../src/tenant-store/directory";
import { setStoreClock } from "../../src/tenant-store/object";
import { fakeStripe, stubNetwork } from "../helpers/network";
import { type Body, callWithEnv } from "../helpers/request";
import { storeOf } from "../helpers/store";
import { seedTenant } from "../helpers/tenant";
import { TEST_STRIPE } from "../helpers/vars";

const DAY = 24 * 60 * 60 * 1000;
const thisMonth = () => new Date().toISOString().slice(0, 7);

let stripe: ReturnType<typeof fakeStripe>;
beforeEach(() => {
	stripe = fakeStripe();
	stubNetwork(vi, { routes: stripe.routes });
});

/**
 * An organization on `plan`, with a live Stripe subscription (as the webhook stores it) unless `customer`
 * is false, still on the shared tables: its UsageCounter object runs the usage ledger (services/
 * usage-ledger.ts), whose reports are the same code in a tenant store (last describe).
 */
async function billedTenant(plan: "pro" | "enterprise", o: { customer?: boolean } = {}) {
	const t = await seedTenant({ plan });
	await env.DB.prepare("UPDATE organizations SET store_state = 'd1' WHERE id = ?").bind(t.orgId).run();
	forgetStoreRoute(t.orgId);
	const customer = `cus_${t.orgId.slice(-12)}`;
	if (o.customer !== false) {
		await env.DB.prepare(
			`INSERT INTO subscriptions (organization_id, provider, customer_id, subscription_id, plan, status, current_period_end, source_updated_at, updated_at)
			VALUES (?, 'stripe', ?, ?, ?, 'active', ?, 1, 1)`,
		)
			.bind(t.orgId, customer, `sub_${t.orgId.slice(-12)}`, plan, Date.now() + 20 * DAY)
			.run();
	}
	const counter = usageCounter(env, t.orgId);
	return {
		...t,
		customer,
		counter,
		/** API calls counted by the organization's UsageCounter (as the meter middleware sends them). */
		add: (count: number, at?: number) => counter.add({ organizationId: t.orgId, count, quota: 1_000_000, ...(at ? { at } : {}) }),
		/** The write-behind alarm; true when one was due. */
		alarm: () => runDurableObjectAlarm(counter),
		nextAlarm: () => runInDurableObject(counter, (_o, state) => state.storage.getAlarm()),
		/** The meter events Stripe holds for this customer, as values. */
		billed: () => stripe.meter.events.filter((e) => e.payload.stripe_customer_id === customer).map((e) => Number(e.payload.value)),
	};
}

const meterCalls = () => stripe.calls.filter((c) => new URL(c.url).pathname === "/v1/billing/meter_events");
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

describe("usage-based billing: the write-behind reports API calls to Stripe's Billing Meter", () => {
	it("sends what the month grew by since the last report, as form-encoded meter events with a deterministic identifier", async () => {
		const t = await billedTenant("enterprise");
		await t.add(40);
		expect(await t.alarm()).toBe(true);
		const month = thisMonth();
		expect(stripe.meter.events).toEqual([
			{
				event_name: TEST_STRIPE.meterEventName,
				identifier: `usage:${t.orgId}:${month}:40`,
				timestamp: expect.any(Number),
				payload: { stripe_customer_id: t.customer, value: "40" },
			},
		]);
		expect(Math.abs(stripe.meter.events[0]!.timestamp - Date.now() / 1000)).toBeLessThan(60);
		const [sent] = meterCalls();
		expect(sent!.idempotencyKey).toMatch(/^[0-9a-f-]{36}$/);
		expect(sent!.stripeVersion).toMatch(/^\d{4}-\d{2}-\d{2}\.\w+$/);
		expect(sent!.body).toContain("payload[stripe_customer_id]=");
		// The D1 rollup is written as before.
		expect(await env.DB.prepare("SELECT count FROM usage_daily WHERE organization_id = ?").bind(t.orgId).first()).toEqual({ count: 40 });

		// Nothing new: no alarm is due and nothing is sent.
		expect(await t.alarm()).toBe(false);
		await t.add(25);
		expect(await t.alarm()).toBe(true);
		expect(t.billed()).toEqual([40, 25]);
		expect(stripe.meter.events.at(-1)!.identifier).toBe(`usage:${t.orgId}:${month}:65`);
		expect(sum(t.billed())).toBe((await t.counter.summary()).used);
		expect(meterCalls()).toHaveLength(2);
	});

	it("a retry never double-bills: Stripe took the event but answered 500, or Stripe was down", async () => {
		const t = await billedTenant("enterprise");
		// Stripe records the event and answers 500; the request's own retry (same Idempotency-Key) gets the
		// same 500 replayed. The Worker cannot know the event arrived.
		await t.add(30);
		stripe.meter.failNext = 1;
		const before = Date.now();
		expect(await t.alarm()).toBe(true);
		expect(t.billed()).toEqual([30]);
		expect(meterCalls().map((c) => c.idempotencyKey)).toEqual([expect.any(String), meterCalls()[0]!.idempotencyKey]);
		// The alarm tries again METER_RETRY_MS later: the same event first (its identifier is refused as
		// already held, which counts as delivered), then what came since.
		expect(await t.nextAlarm()).toBeGreaterThanOrEqual(before + METER_RETRY_MS);
		await t.add(10);
		expect(await t.alarm()).toBe(true);
		expect(t.billed()).toEqual([30, 10]);
		const identifiers = meterCalls().map((c) => new URLSearchParams(c.body).get("identifier"));
		const month = thisMonth();
		expect(identifiers).toEqual([...Array(3).fill(`usage:${t.orgId}:${month}:30`), `usage:${t.orgId}:${month}:40`]);
		expect(await t.nextAlarm()).toBeNull();

		// Stripe down (nothing recorded, both attempts 503): the same event goes once Stripe is back.
		await t.add(7);
		stripe.meter.downNext = 2;
		expect(await t.alarm()).toBe(true);
		expect(t.billed()).toEqual([30, 10]);
		expect(await t.alarm()).toBe(true);
		expect(t.billed()).toEqual([30, 10, 7]);
		expect(sum(t.billed())).toBe((await t.counter.summary()).used);
	});

	it("the last month's tail is reported in that month, dated its last second", async () => {
		const t = await billedTenant("enterprise");
		const now = new Date();
		const monthStart = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1);
		const lastMonth = new Date(monthStart - 3_600_000).toISOString().slice(0, 7);
		await t.add(12, monthStart - 3_600_000);
		await t.add(3);
		expect(await t.alarm()).toBe(true);
		expect(stripe.meter.events.map((e) => [e.identifier, e.payload.value, e.timestamp])).toEqual([
			[`usage:${t.orgId}:${lastMonth}:12`, "12", monthStart / 1000 - 1],
			[`usage:${t.orgId}:${thisMonth()}:3`, "3", expect.any(Number)],
		]);
	});

	it("opt-in per plan: other plans and organizations without a Stripe customer report nothing, and their calls are never billed later", async () => {
		const pro = await billedTenant("pro");
		await pro.add(10);
		expect(await pro.alarm()).toBe(true);
		expect(meterCalls()).toHaveLength(0);
		// Upgraded to a metered plan: only the calls from then on are billed.
		await env.DB.batch([
			env.DB.prepare("UPDATE organizations SET plan = 'enterprise' WHERE id = ?").bind(pro.orgId),
			env.DB.prepare("UPDATE subscriptions SET plan = 'enterprise' WHERE organization_id = ?").bind(pro.orgId),
		]);
		await pro.add(5);
		expect(await pro.alarm()).toBe(true);
		expect(pro.billed()).toEqual([5]);

		const noCustomer = await billedTenant("enterprise", { customer: false });
		await noCustomer.add(8);
		expect(await noCustomer.alarm()).toBe(true);
		expect(meterCalls()).toHaveLength(1);
		expect(await noCustomer.nextAlarm()).toBeNull();
	});

	it("Checkout for a metered plan adds STRIPE_METERED_PRICE_ID next to the monthly price; other plans do not", async () => {
		const t = await seedTenant();
		const body = { successUrl: "https://app.example/ok", cancelUrl: "https://app.example/cancel" };
		const vars = { STRIPE_METERED_PRICE_ID: "price_metered_api_calls" };
		const checkout = (plan: string) =>
			callWithEnv<Body<"POST /api/orgs/:orgId/billing/checkout">>(vars, "POST", `${t.base}/billing/checkout`, {
				token: t.admin.token,
				body: { ...body, plan },
			});
		expect((await checkout("enterprise")).status).toBe(201);
		expect((await checkout("pro")).status).toBe(201);
		const [enterprise, pro] = stripe.calls.map((c) => new URLSearchParams(c.body));
		expect(enterprise!.get("line_items[1][price]")).toBe("price_metered_api_calls");
		expect(enterprise!.has("line_items[1][quantity]")).toBe(false);
		expect(enterprise!.get("line_items[0][price_data][unit_amount]")).toBe("49900");
		expect([...pro!.keys()].filter((k) => k.startsWith("line_items[1]"))).toEqual([]);
	});
});

describe("usage-based billing from a tenant store", () => {
	afterEach(() => setStoreClock());

	it("the store's alarm reports the month's growth once the write-behind is due, and retries a failed report METER_RETRY_MS later", async () => {
		let now = Date.now();
		setStoreClock(() => now);
		const t = await billedTenant("enterprise");
		await env.DB.prepare("UPDATE organizations SET store_state = NULL WHERE id = ?").bind(t.orgId).run();
		forgetStoreRoute(t.orgId);
		const store = storeOf(t.orgId);
		const alarm = () => runDurableObjectAlarm(store);
		const nextAlarm = () => runInDurableObject(store, (_o, state) => state.storage.getAlarm());
		const storeBilled = () => stripe.meter.events.filter((e) => e.payload.stripe_customer_id === t.customer).map((e) => Number(e.payload.value));

		expect(await store.meter(t.orgId, { count: 40, quota: 1_000_000, at: now })).toMatchObject({ allowed: true, monthUsed: 40 });
		expect(await nextAlarm()).toBe(now + WRITE_BEHIND_MS);
		// Before it is due the alarm (run early here) reports nothing.
		await alarm();
		expect(meterCalls()).toHaveLength(0);
		now += WRITE_BEHIND_MS;
		await alarm();
		expect(stripe.meter.events.map((e) => [e.identifier, e.payload.value])).toEqual([[`usage:${t.orgId}:${thisMonth()}:40`, "40"]]);
		expect(await env.DB.prepare("SELECT count FROM usage_daily WHERE organization_id = ?").bind(t.orgId).first()).toEqual({ count: 40 });

		// Stripe down: kept, and sent again METER_RETRY_MS later, once.
		await store.meter(t.orgId, { count: 5, quota: 1_000_000, at: now });
		stripe.meter.downNext = 2;
		now += WRITE_BEHIND_MS;
		await alarm();
		expect(storeBilled()).toEqual([40]);
		expect(await nextAlarm()).toBe(now + METER_RETRY_MS);
		now += METER_RETRY_MS;
		await alarm();
		expect(storeBilled()).toEqual([40, 5]);
		expect(sum(storeBilled())).toBe((await store.usageSummary()).used);
		expect(await nextAlarm()).toBeNull();
	});
});
