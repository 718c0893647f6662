import { env } from "cloudflare:workers";
import Stripe from "stripe";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { runScheduled } from "../../src/queue/consumer";
import { PLANS } from "../../src/services/plans";
import { uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { fakeRazorpay, fakeStripe, stubNetwork } from "../helpers/network";
import { deletedData, envelope } from "../helpers/clerk";
import { deliver, eventRow, messageFor } from "../helpers/queue";
import { type Body, call, callWithEnv, type Problem } from "../helpers/request";
import { seedTenant } from "../helpers/tenant";
import { captureTenantEvents, deliverTenant } from "../helpers/tenant-queue";
import { TEST_OPERATOR, TEST_RAZORPAY, TEST_STRIPE } from "../helpers/vars";

const hex = (buf: ArrayBuffer) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
async function hmac(secret: string, data: string) {
	const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
		"sign",
	]);
	return hex(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(data)));
}

let razorpay: ReturnType<typeof fakeRazorpay>;
let stripeApi: ReturnType<typeof fakeStripe>;

beforeEach(() => {
	razorpay = fakeRazorpay();
	stripeApi = fakeStripe();
	stubNetwork(vi, { routes: { ...razorpay.routes, ...stripeApi.routes } });
});

type PaymentOrder = Body<"POST /api/payments/orders">;
type Billing = Body<"GET /api/orgs/:orgId/billing">;
type Message = Parameters<typeof deliver>[0][number];

/** Tokens with the organization active, as the payments routes need. */
const tenant = () =>
	seedTenant({
		members: { admin: { role: "org:admin", activeOrg: true }, member: { role: "org:member", activeOrg: true } },
	});

describe("Razorpay orders and verification", () => {
	it("creates an order at Razorpay (Basic auth, amount in paise) and stores it CREATED", async () => {
		const t = await tenant();
		const res = await call<PaymentOrder>("POST", "/api/payments/orders", {
			token: t.member.token,
			body: { amount: 49900, currency: "INR", receipt: "rcpt_1" },
		});
		expect(res.status, res.text).toBe(201);
		expect(res.json).toMatchObject({
			entity: "order",
			amount: 49900,
			currency: "INR",
			receipt: "rcpt_1",
			status: "CREATED",
			keyId: TEST_RAZORPAY.keyId,
		});
		expect(res.json.id).toBe(res.json.razorpayOrderId);
		expect((await call<PaymentOrder>("GET", `/api/payments/orders/${res.json.paymentOrderId}`, { token: t.member.token })).json.id).toBe(res.json.id);
		expect(razorpay.calls).toHaveLength(1);
		expect(razorpay.calls[0]!.auth).toBe(`Basic ${btoa(`${TEST_RAZORPAY.keyId}:${TEST_RAZORPAY.keySecret}`)}`);
		expect(razorpay.calls[0]!.body).toMatchObject({
			amount: 49900,
			currency: "INR",
			receipt: "rcpt_1",
			notes: { organization_id: t.orgId },
		});
		const row = await env.DB.prepare("SELECT organization_id, status FROM payment_orders WHERE razorpay_order_id = ?")
			.bind(res.json.razorpayOrderId)
			.first();
		expect(row).toEqual({ organization_id: t.orgId, status: "CREATED" });
	});

	it("notes: at most 14 (Razorpay takes 15 pairs, the order adds organization_id), refused before Razorpay past that", async () => {
		const t = await tenant();
		const calls = razorpay.calls.length;
		const notes = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]));
		const many = await call<Problem>("POST", "/api/payments/orders", { token: t.admin.token, body: { amount: 1000, notes: notes(15) } });
		expect(many.status, many.text).toBe(400);
		expect(razorpay.calls).toHaveLength(calls);
		const most = await call<PaymentOrder>("POST", "/api/payments/orders", { token: t.admin.token, body: { amount: 1000, notes: notes(14) } });
		expect(most.status, most.text).toBe(201);
		expect(Object.keys(razorpay.calls.at(-1)!.body.notes as object)).toHaveLength(15);
	});

	it("needs an active organization; Razorpay's refusal is a 400", async () => {
		const noOrg = await signToken({ userId: uid("user") });
		expect((await call<PaymentOrder>("POST", "/api/payments/orders", { token: noOrg, body: { amount: 1000 } })).status).toBe(403);
		const t = await tenant();
		const refused = await call<Problem>("POST", "/api/payments/orders", { token: t.admin.token, body: { amount: 1000, currency: "XXX" } });
		expect(refused.status, refused.text).toBe(400);
		expect(refused.json.detail).toContain("Currency is not supported");
		expect(
			await env.DB.prepare("SELECT count(*) AS n FROM payment_orders WHERE organization_id = ?").bind(t.orgId).first(),
		).toEqual({ n: 0 });
		// Razorpay down: 503, nothing stored.
		stubNetwork(vi, { routes: { "https://api.razorpay.com/": () => new Response("oops", { status: 502 }) } });
		const down = await call("POST", "/api/payments/orders", { token: t.admin.token, body: { amount: 1000 } });
		expect(down.status).toBe(503);
	});

	it("verify: a valid signature marks it PAID (twice is harmless); a bad one is 400 and changes nothing", async () => {
		const t = await tenant();
		const order = (await call<PaymentOrder>("POST", "/api/payments/orders", { token: t.member.token, body: { amount: 10000 } })).json;
		const paymentId = `pay_${uid("p").slice(-14)}`;
		const signature = await hmac(TEST_RAZORPAY.keySecret, `${order.razorpayOrderId}|${paymentId}`);
		const body = { razorpay_order_id: order.razorpayOrderId, razorpay_payment_id: paymentId, razorpay_signature: signature };
		const ok = await call("POST", "/api/payments/verify", { token: t.member.token, body });
		expect(ok.status, ok.text).toBe(200);
		expect(ok.json).toEqual({
			status: "PAID",
			orderId: order.id,
			paymentOrderId: order.paymentOrderId,
			razorpayOrderId: order.razorpayOrderId,
			paymentId,
		});
		expect(order.id).toBe(order.razorpayOrderId);
		expect(order.id).toMatch(/^order_/);
		expect((await call("POST", "/api/payments/verify", { token: t.member.token, body })).status).toBe(200);
		const txns = await env.DB.prepare("SELECT count(*) AS n FROM payment_transactions WHERE razorpay_payment_id = ?")
			.bind(paymentId)
			.first();
		expect(txns).toEqual({ n: 1 });
		// A bad signature later cannot undo PAID.
		const bad = await call("POST", "/api/payments/verify", {
			token: t.member.token,
			body: { ...body, razorpay_signature: "0".repeat(64) },
		});
		expect(bad.status).toBe(400);
		expect((await call<PaymentOrder>("GET", `/api/payments/orders/${order.id}`, { token: t.member.token })).json.status).toBe("PAID");

		const other = (await call<PaymentOrder>("POST", "/api/payments/orders", { token: t.member.token, body: { amount: 10000 } })).json;
		const tampered = await call("POST", "/api/payments/verify", {
			token: t.member.token,
			body: { razorpay_order_id: other.razorpayOrderId, razorpay_payment_id: paymentId, razorpay_signature: signature },
		});
		expect(tampered.status, tampered.text).toBe(400);
		expect(tampered.headers.get("content-type")).toBe("application/problem+json");
		// Issue 16 item 5: a bad signature leaves the order as it was (it used to flip it to FAILED).
		expect((await call<PaymentOrder>("GET", `/api/payments/orders/${other.id}`, { token: t.member.token })).json.status).toBe("CREATED");
	});

	it("only members of the organization can see or verify its orders", async () => {
		const t = await tenant();
		const order = (await call<PaymentOrder>("POST", "/api/payments/orders", { token: t.member.token, body: { amount: 10000 } })).json;
		const other = await tenant();
		expect((await call<PaymentOrder>("GET", `/api/payments/orders/${order.id}`, { token: other.admin.token })).status).toBe(404);
		const paymentId = "pay_x";
		const signature = await hmac(TEST_RAZORPAY.keySecret, `${order.razorpayOrderId}|${paymentId}`);
		const res = await call("POST", "/api/payments/verify", {
			token: other.admin.token,
			body: { razorpay_order_id: order.razorpayOrderId, razorpay_payment_id: paymentId, razorpay_signature: signature },
		});
		expect(res.status).toBe(404);
		expect((await call<PaymentOrder>("GET", `/api/payments/orders/${order.id}`, { token: t.member.token })).json.status).toBe("CREATED");
	});
});

describe("POST /api/webhooks/razorpay", () => {
	const event = (type: string, razorpayOrderId: string, paymentId: string) =>
		JSON.stringify({
			entity: "event",
			account_id: "acc_test",
			event: type,
			contains: ["payment"],
			payload: {
				payment: {
					entity: {
						id: paymentId,
						entity: "payment",
						amount: 10000,
						currency: "INR",
						status: type === "payment.failed" ? "failed" : "captured",
						order_id: razorpayOrderId,
					},
				},
			},
			created_at: Math.floor(Date.now() / 1000),
		});

	it.each([
		[
			"tampered body",
			async (raw: string) => ({ raw: raw.replace("10000", "1"), sig: await hmac(TEST_RAZORPAY.webhookSecret, raw) }),
			401,
		],
		["wrong secret", async (raw: string) => ({ raw, sig: await hmac("not-the-secret", raw) }), 401],
		["missing signature", async (raw: string) => ({ raw, sig: undefined }), 401],
	] as const)("%s: refused, nothing queued", async (_n, make, status) => {
		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send");
		const { raw, sig } = await make(event("payment.captured", "order_x", "pay_x"));
		const headers: Record<string, string> = { "content-type": "application/json", "x-razorpay-event-id": uid("evt") };
		if (sig) headers["x-razorpay-signature"] = sig;
		const res = await call("POST", "/api/webhooks/razorpay", { body: raw, headers });
		expect(res.status, res.text).toBe(status);
		expect(send).not.toHaveBeenCalled();
	});

	it("valid: 202, queued, and the consumer marks the order PAID idempotently", async () => {
		const t = await tenant();
		const order = (await call<PaymentOrder>("POST", "/api/payments/orders", { token: t.member.token, body: { amount: 10000 } })).json;
		const raw = event("payment.captured", order.razorpayOrderId, "pay_hook1");
		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send").mockResolvedValue(undefined as never);
		const eventId = uid("evt");
		const res = await call("POST", "/api/webhooks/razorpay", {
			body: raw,
			headers: {
				"content-type": "application/json",
				"x-razorpay-signature": await hmac(TEST_RAZORPAY.webhookSecret, raw),
				"x-razorpay-event-id": eventId,
			},
		});
		expect(res.status, res.text).toBe(202);
		const msg = send.mock.calls[0]![0] as Message;
		expect(msg).toMatchObject({ source: "razorpay", svixId: eventId, type: "payment.captured" });
		// A failed attempt recorded after the capture changes nothing; the capture delivered twice neither.
		const failed = {
			...msg,
			svixId: uid("evt"),
			type: "payment.failed",
			body: event("payment.failed", order.razorpayOrderId, "pay_hook1"),
		};
		await deliver([msg]);
		await deliver([failed, msg]);
		expect((await call<PaymentOrder>("GET", `/api/payments/orders/${order.id}`, { token: t.member.token })).json.status).toBe("PAID");
		const txn = await env.DB.prepare(
			"SELECT status, source FROM payment_transactions WHERE razorpay_payment_id = 'pay_hook1'",
		).first();
		expect(txn).toEqual({ status: "captured", source: "webhook" });
		expect(await eventRow(eventId)).toMatchObject({ source: "razorpay", organization_id: t.orgId, outcome: "processed" });
	});
});

describe("Stripe", () => {
	const stripe = new Stripe(TEST_STRIPE.secretKey);
	const crypto = Stripe.createSubtleCryptoProvider();
	const sign = (payload: string, timestamp?: number, secret = TEST_STRIPE.webhookSecret) =>
		stripe.webhooks.generateTestHeaderStringAsync({ payload, secret, timestamp, cryptoProvider: crypto });
	const subscriptionEvent = (
		type: string,
		orgId: string,
		o: { plan?: string; status?: string; created?: number; customer?: string } = {},
	) =>
		JSON.stringify({
			id: `evt_${uid("s").slice(-16)}`,
			object: "event",
			type,
			created: o.created ?? Math.floor(Date.now() / 1000),
			data: {
				object: {
					id: "sub_123",
					object: "subscription",
					customer: o.customer ?? "cus_123",
					status: o.status ?? "active",
					metadata: { organizationId: orgId, plan: o.plan ?? "pro" },
					items: {
						object: "list",
						data: [{ id: "si_1", current_period_end: 1_900_000_000, price: { id: "price_1", metadata: {} } }],
					},
				},
			},
		});

	it("checkout (org:admin) creates a subscription Checkout Session: form-encoded, Bearer key, pinned version, Idempotency-Key", async () => {
		const t = await tenant();
		const body = { plan: "pro", successUrl: "https://app.example/ok", cancelUrl: "https://app.example/cancel" };
		const res = await call<Body<"POST /api/orgs/:orgId/billing/checkout">>("POST", `/api/orgs/${t.orgId}/billing/checkout`, { token: t.admin.token, body });
		expect(res.status, res.text).toBe(201);
		expect(res.json.url).toContain("https://checkout.stripe.com/");
		const sent = new URLSearchParams(stripeApi.calls[0]!.body);
		expect(sent.get("mode")).toBe("subscription");
		expect(sent.get("client_reference_id")).toBe(t.orgId);
		expect(sent.get("subscription_data[metadata][organizationId]")).toBe(t.orgId);
		expect(sent.get("line_items[0][price_data][unit_amount]")).toBe(String(PLANS.pro.priceMinor));
		expect(sent.get("line_items[0][price_data][recurring][interval]")).toBe("month");
		expect(sent.get("line_items[0][price_data][product_data][metadata][plan]")).toBe("pro");
		expect(sent.get("success_url")).toBe("https://app.example/ok");
		expect(stripeApi.calls[0]).toMatchObject({
			auth: `Bearer ${TEST_STRIPE.secretKey}`,
			stripeVersion: expect.stringMatching(/^\d{4}-\d{2}-\d{2}\.\w+$/),
			idempotencyKey: expect.stringMatching(/^[0-9a-f-]{36}$/),
		});
		expect((await call("POST", `/api/orgs/${t.orgId}/billing/checkout`, { token: t.member.token, body })).status).toBe(403);
	});

	it.each([
		["tampered", async (raw: string) => ({ raw: raw.replace('"pro"', '"enterprise"'), sig: await sign(raw) })],
		["wrong secret", async (raw: string) => ({ raw, sig: await sign(raw, undefined, "whsec_wrong") })],
		["stale (301 s)", async (raw: string) => ({ raw, sig: await sign(raw, Math.floor(Date.now() / 1000) - 301) })],
		["without t=", async (raw: string) => ({ raw, sig: (await sign(raw)).replace(/^t=\d+,/, "") })],
		["without v1=", async (raw: string) => ({ raw, sig: (await sign(raw)).replace(/,v1=.*$/, "") })],
		["v0 only", async (raw: string) => ({ raw, sig: (await sign(raw)).replace(",v1=", ",v0=") })],
		["signed for another timestamp", async (raw: string) => ({ raw, sig: (await sign(raw)).replace(/^t=(\d+)/, (_m, t) => `t=${Number(t) - 1}`) })],
	])("webhook %s: 401, nothing queued", async (_n, make) => {
		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send");
		const { raw, sig } = await make(subscriptionEvent("customer.subscription.updated", "org_x"));
		const res = await call("POST", "/api/webhooks/stripe", {
			body: raw,
			headers: { "content-type": "application/json", "stripe-signature": sig },
		});
		expect(res.status, res.text).toBe(401);
		expect(send).not.toHaveBeenCalled();
	});

	it.each([
		"notjson",
		'{"id":"evt_x","type":"a","created":1',
		// A thin event (an event destination's v2 notification), correctly signed: not a snapshot event to apply.
		'{"id":"evt_test_65R9Ijk8","object":"v2.core.event","type":"v1.billing.meter.error_report_triggered","created":"2024-09-17T06:20:52.246Z","related_object":{"id":"mtr_1","type":"billing.meter","url":"/v1/billing/meters/mtr_1"}}',
	])("webhook correctly signed but not a snapshot event in JSON (%s): 400, nothing queued, no per-IP token spent", async (raw) => {
		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send");
		const res = await call<Problem>("POST", "/api/webhooks/stripe", {
			body: raw,
			headers: { "content-type": "application/json", "stripe-signature": await sign(raw) },
		});
		expect(res.status, res.text).toBe(400);
		expect(res.headers.get("www-authenticate")).toBeNull();
		expect(send).not.toHaveBeenCalled();
	});

	it("webhook: any one of several v1 signatures verifies (secret rotation); 290 s old is within the tolerance", async () => {
		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send").mockResolvedValue(undefined as never);
		const raw = subscriptionEvent("customer.subscription.updated", "org_x");
		const ts = Math.floor(Date.now() / 1000) - 290;
		const v1 = async (secret?: string) => (await sign(raw, ts, secret)).split(",v1=")[1];
		const header = `t=${ts},v1=${await v1("whsec_previous")},v1=${await v1()}`;
		const res = await call("POST", "/api/webhooks/stripe", { body: raw, headers: { "content-type": "application/json", "stripe-signature": header } });
		expect(res.status, res.text).toBe(202);
		expect(send).toHaveBeenCalledTimes(1);
	});

	it("subscription events move the plan: entitlements and rate limits follow; older events never win", async () => {
		const t = await tenant();
		const billing = async () => (await call<Billing>("GET", `/api/orgs/${t.orgId}/billing`, { token: t.member.token })).json;
		expect(await billing()).toMatchObject({
			plan: "free",
			status: "none",
			entitlements: { features: { outgoing_webhooks: false } },
		});

		const raw = subscriptionEvent("customer.subscription.created", t.orgId, { plan: "pro", created: 1_800_000_000 });
		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send").mockResolvedValue(undefined as never);
		const res = await call("POST", "/api/webhooks/stripe", {
			body: raw,
			headers: { "content-type": "application/json", "stripe-signature": await sign(raw) },
		});
		expect(res.status, res.text).toBe(202);
		await deliver([send.mock.calls[0]![0] as Message]);
		expect(await billing()).toMatchObject({
			plan: "pro",
			status: "active",
			periodEnd: 1_900_000_000_000,
			provider: "stripe",
			entitlements: { features: { outgoing_webhooks: true }, limits: { monthlyApiQuota: PLANS.pro.limits.monthlyApiQuota } },
		});
		const limited = await callWithEnv({ RATE_LIMIT_MODE: "strict" }, "GET", `/api/orgs/${t.orgId}`, { token: t.member.token });
		expect(limited.headers.get("ratelimit-limit")).toBe(String(PLANS.pro.limits.userRequestsPerMinute));

		// An older "updated" (created earlier) arriving late does not roll the plan back.
		const old = {
			source: "stripe",
			svixId: uid("evt"),
			type: "customer.subscription.updated",
			timestamp: 0,
			receivedAt: Date.now(),
			body: subscriptionEvent("customer.subscription.updated", t.orgId, { plan: "enterprise", created: 1_700_000_000 }),
		};
		await deliver([old as Message]);
		expect((await billing()).plan).toBe("pro");
		expect(await eventRow(old.svixId)).toMatchObject({ outcome: "stale" });

		// A one-off invoice (no subscription named) failing says nothing of the subscription.
		const oneOff = {
			...old,
			svixId: uid("evt"),
			type: "invoice.payment_failed",
			body: JSON.stringify({
				id: "evt_o",
				type: "invoice.payment_failed",
				created: 1_800_000_050,
				data: { object: { id: "in_0", object: "invoice", customer: "cus_123", parent: null } },
			}),
		};
		await deliver([oneOff as Message]);
		expect(await billing()).toMatchObject({ plan: "pro", status: "active" });
		expect(await eventRow(oneOff.svixId)).toMatchObject({ outcome: "ignored" });

		const failed = {
			...old,
			svixId: uid("evt"),
			type: "invoice.payment_failed",
			body: JSON.stringify({
				id: "evt_f",
				type: "invoice.payment_failed",
				created: 1_800_000_100,
				data: { object: { id: "in_1", object: "invoice", customer: "cus_123", subscription: "sub_123" } },
			}),
		};
		await deliver([failed as Message]);
		expect(await billing()).toMatchObject({ plan: "pro", status: "past_due" });

		const deleted = {
			...old,
			svixId: uid("evt"),
			type: "customer.subscription.deleted",
			body: subscriptionEvent("customer.subscription.deleted", t.orgId, { created: 1_800_000_200, status: "canceled" }),
		};
		await deliver([deleted as Message]);
		expect(await billing()).toMatchObject({
			plan: "free",
			status: "canceled",
			entitlements: { features: { outgoing_webhooks: false } },
		});
	});
});

describe("Stripe: one row per subscription (issue 16 item 9)", () => {
	const stripe = new Stripe(TEST_STRIPE.secretKey);
	const cryptoProvider = Stripe.createSubtleCryptoProvider();
	const sign = (payload: string, secret = TEST_STRIPE.webhookSecret) =>
		stripe.webhooks.generateTestHeaderStringAsync({ payload, secret, cryptoProvider });

	/** A customer.subscription.* event for one subscription, as Stripe sends it (recorded shape, trimmed). */
	const subEvent = (
		type: string,
		orgId: string,
		o: { sub: string; plan: string; created: number; status?: string; customer?: string; periodEnd?: number },
	) => ({
		id: `evt_${uid("s").slice(-16)}`,
		object: "event",
		type,
		created: o.created,
		data: {
			object: {
				id: o.sub,
				object: "subscription",
				customer: o.customer ?? `cus_${orgId.slice(-10)}`,
				status: o.status ?? (type === "customer.subscription.deleted" ? "canceled" : "active"),
				metadata: { organizationId: orgId, plan: o.plan },
				items: {
					object: "list",
					data: [{ id: "si_1", current_period_end: o.periodEnd ?? 1_900_000_000, price: { id: "price_1", metadata: {} } }],
				},
			},
		},
	});
	/** The queue message the route produces for a verified event. */
	const msg = (e: { id: string; type: string; created: number; data: unknown }): Message => ({
		source: "stripe",
		svixId: e.id,
		type: e.type,
		timestamp: e.created * 1000,
		receivedAt: Date.now(),
		body: JSON.stringify(e),
	});

	/** A tenant (organization active in its tokens) with its billing view, its stored plan and subscription ids. */
	async function subscriber() {
		const t = await tenant();
		const billing = async () => (await call<Billing>("GET", `/api/orgs/${t.orgId}/billing`, { token: t.member.token })).json;
		const orgPlan = async () =>
			(await env.DB.prepare("SELECT plan FROM organizations WHERE id = ?").bind(t.orgId).first<{ plan: string }>())!.plan;
		return { ...t, billing, orgPlan, sub: (name: string) => `sub_${name}_${t.orgId.slice(-8)}` };
	}

	it("two events of the same second, the older state last (created incomplete after updated active): the active one stays", async () => {
		const t = await subscriber();
		const sub = t.sub("tie");
		const updated = subEvent("customer.subscription.updated", t.orgId, { sub, plan: "pro", created: 1_800_000_000, status: "active" });
		const created = subEvent("customer.subscription.created", t.orgId, { sub, plan: "pro", created: 1_800_000_000, status: "incomplete" });
		await deliver([msg(updated)]);
		await deliver([msg(created)]);
		expect(await t.billing()).toMatchObject({ plan: "pro", status: "active" });
		expect(await t.orgPlan()).toBe("pro");
		expect(await eventRow(created.id)).toMatchObject({ outcome: "stale" });
		// The other way round, as Stripe usually delivers them: active wins too.
		const other = t.sub("tie2");
		await deliver([msg(subEvent("customer.subscription.created", t.orgId, { sub: other, plan: "pro", created: 1_800_000_010, status: "incomplete" }))]);
		await deliver([msg(subEvent("customer.subscription.updated", t.orgId, { sub: other, plan: "pro", created: 1_800_000_010, status: "active" }))]);
		expect(await env.DB.prepare("SELECT status FROM subscriptions WHERE subscription_id = ?").bind(other).first()).toEqual({ status: "active" });
	});

	it("a trial's paid (zero) invoice leaves it trialing; one paid once the trial ended makes it active", async () => {
		const t = await subscriber();
		const sub = t.sub("trial");
		const trialing = subEvent("customer.subscription.created", t.orgId, { sub, plan: "pro", created: 1_800_000_000, status: "trialing" });
		(trialing.data.object as Record<string, unknown>).trial_end = 1_801_209_600;
		await deliver([msg(trialing)]);
		const paid = (created: number) =>
			msg({
				id: `evt_${uid("p").slice(-12)}`,
				type: "invoice.paid",
				created,
				data: { object: { id: `in_${created}`, object: "invoice", customer: `cus_${t.orgId.slice(-10)}`, subscription: sub } },
			});
		await deliver([paid(1_800_000_000)]);
		expect(await t.billing()).toMatchObject({ plan: "pro", status: "trialing" });
		// The first paid invoice after the trial, its customer.subscription.updated (active) still on its way.
		await deliver([paid(1_801_209_700)]);
		expect(await t.billing()).toMatchObject({ plan: "pro", status: "active" });
	});

	it("two live subscriptions: the plan is the best one; the other's renewal or deletion does not take it away", async () => {
		const t = await subscriber();
		const pro = t.sub("pro");
		const ent = t.sub("ent");
		await deliver([msg(subEvent("customer.subscription.created", t.orgId, { sub: pro, plan: "pro", created: 1_800_000_000 }))]);
		expect(await t.orgPlan()).toBe("pro");
		await deliver([
			msg(subEvent("customer.subscription.created", t.orgId, { sub: ent, plan: "enterprise", created: 1_800_000_100 })),
		]);
		expect(await t.orgPlan()).toBe("enterprise");
		const rows = await env.DB.prepare(
			"SELECT subscription_id, plan, status FROM subscriptions WHERE organization_id = ? ORDER BY plan",
		)
			.bind(t.orgId)
			.all();
		expect(rows.results).toEqual([
			{ subscription_id: ent, plan: "enterprise", status: "active" },
			{ subscription_id: pro, plan: "pro", status: "active" },
		]);

		// The pro subscription renews (a later updated): still enterprise.
		const renewal = subEvent("customer.subscription.updated", t.orgId, {
			sub: pro,
			plan: "pro",
			created: 1_800_000_200,
			periodEnd: 1_902_000_000,
		});
		await deliver([msg(renewal)]);
		expect(await t.orgPlan()).toBe("enterprise");
		expect(await t.billing()).toMatchObject({
			plan: "enterprise",
			status: "active",
			periodEnd: 1_900_000_000_000,
			entitlements: { features: { priority_support: true } },
		});
		// Its plan.changed event names the organization's resulting plan, not the renewed subscription's.
		expect(await eventRow(renewal.id)).toMatchObject({ outcome: "processed" });

		// The pro subscription ends: still enterprise. The enterprise one ends: free.
		await deliver([msg(subEvent("customer.subscription.deleted", t.orgId, { sub: pro, plan: "pro", created: 1_800_000_300 }))]);
		expect(await t.orgPlan()).toBe("enterprise");
		// An invoice of the enterprise subscription failing keeps it (past_due is live).
		const failed = {
			id: `evt_${uid("f").slice(-12)}`,
			object: "event",
			type: "invoice.payment_failed",
			created: 1_800_000_350,
			data: { object: { id: "in_1", object: "invoice", customer: `cus_${t.orgId.slice(-10)}`, subscription: ent } },
		};
		await deliver([msg(failed)]);
		expect(await t.billing()).toMatchObject({ plan: "enterprise", status: "past_due" });
		expect(
			await env.DB.prepare("SELECT status FROM subscriptions WHERE subscription_id = ?").bind(pro).first(),
		).toEqual({ status: "canceled" });
		await deliver([
			msg(subEvent("customer.subscription.deleted", t.orgId, { sub: ent, plan: "enterprise", created: 1_800_000_400 })),
		]);
		expect(await t.orgPlan()).toBe("free");
		expect(await t.billing()).toMatchObject({ plan: "free", status: "canceled" });
	});

	it("checkout while a live subscription exists answers 409 problem+json pointing at the billing portal; Stripe is not called", async () => {
		const t = await subscriber();
		const body = { plan: "enterprise", successUrl: "https://app.example/ok", cancelUrl: "https://app.example/cancel" };
		const sub = t.sub("only");
		await deliver([msg(subEvent("customer.subscription.created", t.orgId, { sub, plan: "pro", created: 1_800_000_000 }))]);
		const res = await call<Problem>("POST", `/api/orgs/${t.orgId}/billing/checkout`, { token: t.admin.token, body });
		expect(res.status, res.text).toBe(409);
		expect(res.headers.get("content-type")).toBe("application/problem+json");
		expect(res.json).toMatchObject({ status: 409, code: "CONFLICT" });
		expect(res.json.detail).toContain("billing portal");
		expect(res.json.detail).toContain(`/api/orgs/${t.orgId}/billing/portal`);
		expect(stripeApi.calls).toHaveLength(0);

		// Once it has ended, a new checkout is possible again, for the same Stripe customer.
		await deliver([msg(subEvent("customer.subscription.deleted", t.orgId, { sub, plan: "pro", created: 1_800_000_100 }))]);
		const again = await call<Body<"POST /api/orgs/:orgId/billing/checkout">>("POST", `/api/orgs/${t.orgId}/billing/checkout`, {
			token: t.admin.token,
			body,
		});
		expect(again.status, again.text).toBe(201);
		expect(new URLSearchParams(stripeApi.calls[0]!.body).get("customer")).toBe(`cus_${t.orgId.slice(-10)}`);
	});

	describe("one payable Checkout per organization (two paid Checkouts would be two subscriptions, billed twice)", () => {
		const body = { plan: "pro", successUrl: "https://app.example/ok", cancelUrl: "https://app.example/cancel" };
		const checkout = (t: { orgId: string; admin: { token: string } }) =>
			call<Body<"POST /api/orgs/:orgId/billing/checkout"> & Problem>("POST", `/api/orgs/${t.orgId}/billing/checkout`, {
				token: t.admin.token,
				body,
			});
		const status = (id: string) => stripeApi.checkout.sessions.get(id)?.status;
		const recorded = async (orgId: string) =>
			(await env.DB.prepare("SELECT session_id FROM checkout_sessions WHERE organization_id = ? ORDER BY seq").bind(orgId).all()).results.map(
				(r) => r.session_id,
			);

		it("a new Checkout expires the earlier open one at Stripe: only the last can be paid", async () => {
			const t = await subscriber();
			const first = await checkout(t);
			expect(first.status, first.text).toBe(201);
			const second = await checkout(t);
			expect(second.status, second.text).toBe(201);
			expect(status(first.json.id)).toBe("expired");
			expect(status(second.json.id)).toBe("open");
			const expire = stripeApi.calls.find((c) => c.url.endsWith("/expire"));
			expect(expire).toMatchObject({ url: `https://api.stripe.com/v1/checkout/sessions/${first.json.id}/expire`, auth: `Bearer ${TEST_STRIPE.secretKey}` });
			// Settled sessions are forgotten; the open one is kept until the next Checkout settles it.
			expect(await recorded(t.orgId)).toEqual([second.json.id]);
			expect(() => stripeApi.checkout.pay(first.json.id)).toThrow(/not open/);
		});

		it("a retried Checkout with its Idempotency-Key gets the same session, still open (a new key opens a new one)", async () => {
			const t = await subscriber();
			const headers = { "idempotency-key": uid("ck") };
			const send = () => call<Body<"POST /api/orgs/:orgId/billing/checkout">>("POST", `/api/orgs/${t.orgId}/billing/checkout`, { token: t.admin.token, body, headers });
			const first = await send();
			expect(first.status, first.text).toBe(201);
			const retry = await send();
			expect(retry.status, retry.text).toBe(201);
			expect(retry.headers.get("idempotent-replayed")).toBe("true");
			expect(retry.json).toEqual(first.json);
			expect(status(first.json.id)).toBe("open");
			expect(stripeApi.checkout.sessions.size).toBe(1);
		});

		it("Checkouts started side by side leave exactly one open session", async () => {
			const t = await subscriber();
			const answers = await Promise.all([checkout(t), checkout(t), checkout(t)]);
			for (const a of answers) expect(a.status, a.text).toBe(201);
			const open = answers.filter((a) => status(a.json.id) === "open");
			expect(open).toHaveLength(1);
			expect(await recorded(t.orgId)).toEqual([open[0]!.json.id]);
		});

		it("an earlier Checkout already paid (its webhook not yet processed) makes the new one expire too: 409; once that subscription ended, Checkout works again", async () => {
			const t = await subscriber();
			const first = await checkout(t);
			const sub = stripeApi.checkout.pay(first.json.id);
			const second = await checkout(t);
			expect(second.status, second.text).toBe(409);
			expect(second.json).toMatchObject({ code: "CONFLICT" });
			expect(second.json.detail).toContain("was paid");
			// The session Stripe created for the refused call cannot be paid either.
			const refused = [...stripeApi.checkout.sessions.keys()].find((id) => id !== first.json.id);
			expect(status(refused!)).toBe("expired");
			expect(await recorded(t.orgId)).toEqual([first.json.id]);

			stripeApi.checkout.sessions.get(first.json.id)!.subscription = { id: sub, status: "canceled" };
			const third = await checkout(t);
			expect(third.status, third.text).toBe(201);
			expect(await recorded(t.orgId)).toEqual([third.json.id]);
		});

		it.each([
			["incomplete", 409],
			["trialing", 409],
			// Stripe may still bill these (unpaid: invoices still generated; paused: resumed with a payment method).
			["unpaid", 409],
			["paused", 409],
			["incomplete_expired", 201],
			["canceled", 201],
		])("an earlier Checkout paid for a subscription now %s: the new one answers %i", async (subStatus, expected) => {
			const t = await subscriber();
			const first = await checkout(t);
			stripeApi.checkout.pay(first.json.id, subStatus);
			const next = await checkout(t);
			expect(next.status, next.text).toBe(expected);
			expect(await recorded(t.orgId)).toEqual(expected === 201 ? [next.json.id] : [first.json.id]);
		});

		it("a subscription live by its last webhook but past its period asks Stripe: ended there, a new Checkout works; still billed, 409", async () => {
			const t = await subscriber();
			const sub = t.sub("lapsed");
			// Its deletion at period end was lost: D1 still says active, its period ended two days ago.
			const ended = Math.floor(Date.now() / 1000) - 2 * 86_400;
			await deliver([msg(subEvent("customer.subscription.created", t.orgId, { sub, plan: "pro", created: ended - 86_400, periodEnd: ended }))]);
			expect(await t.billing()).toMatchObject({ plan: "free", status: "active" });
			stripeApi.checkout.subscriptions.set(sub, "active");
			const billed = await checkout(t);
			expect(billed.status, billed.text).toBe(409);
			expect(billed.json.detail).toContain("(active)");
			stripeApi.checkout.subscriptions.set(sub, "canceled");
			const again = await checkout(t);
			expect(again.status, again.text).toBe(201);
			expect(stripeApi.calls.filter((c) => c.url.endsWith(`/v1/subscriptions/${sub}`))).toHaveLength(2);
		});

		it("Stripe unreachable while settling an earlier session: 503, and the next Checkout settles both", async () => {
			const t = await subscriber();
			const first = await checkout(t);
			stubNetwork(vi, {
				routes: {
					"https://api.stripe.com/v1/checkout/sessions/": () => new Response("upstream down", { status: 502 }),
					...stripeApi.routes,
				},
			});
			const down = await checkout(t);
			expect(down.status, down.text).toBe(503);
			expect(status(first.json.id)).toBe("open");
			stubNetwork(vi, { routes: stripeApi.routes });
			const next = await checkout(t);
			expect(next.status, next.text).toBe(201);
			expect([...stripeApi.checkout.sessions.values()].filter((s) => s.status === "open")).toHaveLength(1);
			expect(status(next.json.id)).toBe("open");
			expect(await recorded(t.orgId)).toEqual([next.json.id]);
		});
	});

	it("a second subscription granting a plan is audited as billing.duplicate_subscription, once per subscription", async () => {
		const sent = captureTenantEvents(vi);
		const t = await subscriber();
		const [a, b, c, d] = [t.sub("a"), t.sub("b"), t.sub("c"), t.sub("d")];
		const created = (sub: string, at: number) => msg(subEvent("customer.subscription.created", t.orgId, { sub, plan: "pro", created: at }));
		await deliver([created(a, 1_800_000_000)]);
		// b goes live, then is updated (its own batch), then updated again in one batch with its creation replayed.
		await deliver([created(b, 1_800_000_100)]);
		await deliver([msg(subEvent("customer.subscription.updated", t.orgId, { sub: b, plan: "pro", created: 1_800_000_200 }))]);
		// c and d go live in one batch (two Checkouts paid together): d is planned before c is stored.
		await deliver([created(c, 1_800_000_300), created(d, 1_800_000_300)]);
		await deliverTenant(sent.filter((m) => m.organizationId === t.orgId));
		const audit = await call<Body<"GET /api/orgs/:orgId/audit-logs">>("GET", `/api/orgs/${t.orgId}/audit-logs?action=billing.duplicate_subscription`, {
			token: t.admin.token,
		});
		expect(audit.status, audit.text).toBe(200);
		const entries = audit.json.data.map((e) => [e.target.id, (e.after as { alsoLive: string[] }).alsoLive.toSorted()]);
		expect(entries.toSorted()).toEqual(
			[
				[b, [a]],
				[c, [a, b]],
				[d, [a, b, c]],
			].toSorted(),
		);
		expect(audit.json.data[0]).toMatchObject({ actor: { type: "system", id: null }, after: { plan: "pro", status: "active" } });
	});

	it("a canceled subscription is final: an equal-timestamp or later updated does not revive it", async () => {
		const t = await subscriber();
		const sub = t.sub("c");
		await deliver([msg(subEvent("customer.subscription.created", t.orgId, { sub, plan: "pro", created: 1_800_000_000 }))]);
		await deliver([msg(subEvent("customer.subscription.deleted", t.orgId, { sub, plan: "pro", created: 1_800_000_100 }))]);
		expect(await t.orgPlan()).toBe("free");
		for (const created of [1_800_000_100, 1_800_000_500]) {
			const revive = subEvent("customer.subscription.updated", t.orgId, { sub, plan: "enterprise", created, status: "active" });
			await deliver([msg(revive)]);
			expect(await t.orgPlan(), `updated at ${created}`).toBe("free");
			expect(await env.DB.prepare("SELECT plan, status FROM subscriptions WHERE subscription_id = ?").bind(sub).first()).toEqual({
				plan: "pro",
				status: "canceled",
			});
			expect(await eventRow(revive.id)).toMatchObject({ outcome: "stale" });
		}
		// Nor does a paid invoice.
		await deliver([
			msg({
				id: `evt_${uid("p").slice(-12)}`,
				type: "invoice.paid",
				created: 1_800_000_600,
				data: { object: { id: "in_2", object: "invoice", customer: `cus_${t.orgId.slice(-10)}`, subscription: sub } },
			}),
		]);
		expect(await t.billing()).toMatchObject({ plan: "free", status: "canceled" });
	});

	describe("a deleted organization is no longer billed: the cron expires its Checkouts and cancels its subscriptions at Stripe", () => {
		const body = { plan: "pro", successUrl: "https://app.example/ok", cancelUrl: "https://app.example/cancel" };
		const checkout = (t: { orgId: string; admin: { token: string } }) =>
			call<Body<"POST /api/orgs/:orgId/billing/checkout">>("POST", `/api/orgs/${t.orgId}/billing/checkout`, { token: t.admin.token, body });
		const subStatus = async (sub: string) =>
			(await env.DB.prepare("SELECT status FROM subscriptions WHERE subscription_id = ?").bind(sub).first<{ status: string }>())?.status;
		const queued = async (orgId: string) =>
			(await env.DB.prepare("SELECT count(*) AS n FROM billing_endings WHERE organization_id = ?").bind(orgId).first<{ n: number }>())!.n;
		const sessionsOf = async (orgId: string) =>
			(await env.DB.prepare("SELECT count(*) AS n FROM checkout_sessions WHERE organization_id = ?").bind(orgId).first<{ n: number }>())!.n;
		const callsFor = (id: string) => stripeApi.calls.filter((c) => c.url.includes(id)).map((c) => new URL(c.url).pathname);
		const deleteInClerk = (orgId: string) =>
			deliver([messageFor(envelope("organization.deleted", deletedData(orgId, "organization"), Date.now()))]);

		it("Clerk's organization.deleted: the open Checkout is expired and the live subscription canceled now, once", async () => {
			const t = await subscriber();
			// A subscription that ended before is left alone.
			const ended = t.sub("ended");
			await deliver([msg(subEvent("customer.subscription.created", t.orgId, { sub: ended, plan: "pro", created: 1_700_000_000 }))]);
			await deliver([msg(subEvent("customer.subscription.deleted", t.orgId, { sub: ended, plan: "pro", created: 1_700_000_100 }))]);
			const session = await checkout(t);
			expect(session.status, session.text).toBe(201);
			// A live one (made in the Dashboard, say) beside the open Checkout.
			const live = t.sub("live");
			await deliver([msg(subEvent("customer.subscription.created", t.orgId, { sub: live, plan: "pro", created: 1_800_000_000 }))]);
			stripeApi.checkout.subscriptions.set(live, "active");
			await runScheduled(env);
			expect(await queued(t.orgId)).toBe(0);
			expect(stripeApi.checkout.subscriptions.get(live)).toBe("active");

			await deleteInClerk(t.orgId);
			expect(await queued(t.orgId)).toBe(1);
			await runScheduled(env);
			expect(stripeApi.checkout.sessions.get(session.json.id)?.status).toBe("expired");
			expect(stripeApi.checkout.subscriptions.get(live)).toBe("canceled");
			expect(stripeApi.calls.filter((c) => c.url.includes(`/v1/subscriptions/${live}`))).toHaveLength(1);
			expect(callsFor(ended)).toEqual([]);
			expect([await subStatus(live), await subStatus(ended)]).toEqual(["canceled", "canceled"]);
			expect(await sessionsOf(t.orgId)).toBe(0);
			expect(await queued(t.orgId)).toBe(0);

			// Nothing is left to end: later runs call Stripe no more, and Stripe's own deletion event changes nothing.
			const before = stripeApi.calls.length;
			await runScheduled(env);
			await deliver([msg(subEvent("customer.subscription.deleted", t.orgId, { sub: live, plan: "pro", created: 1_800_000_200 }))]);
			await runScheduled(env);
			expect(stripeApi.calls).toHaveLength(before);
			expect(await subStatus(live)).toBe("canceled");
		});

		it("an operator's offboarding: Stripe unreachable keeps it queued; a subscription Stripe already ended is recorded as such", async () => {
			const t = await subscriber();
			const operator = await signToken({ userId: TEST_OPERATOR, expiresIn: 3600 });
			const [live, gone] = [t.sub("live"), t.sub("gone")];
			await deliver([msg(subEvent("customer.subscription.created", t.orgId, { sub: live, plan: "pro", created: 1_800_000_000 }))]);
			await deliver([msg(subEvent("customer.subscription.created", t.orgId, { sub: gone, plan: "pro", created: 1_800_000_000 }))]);
			stripeApi.checkout.subscriptions.set(live, "active");
			// Ended at Stripe, its webhook lost: D1 still says active.
			stripeApi.checkout.subscriptions.set(gone, "canceled");
			expect((await call("DELETE", `/api/admin/orgs/${t.orgId}`, { token: operator })).status).toBe(202);
			expect(await queued(t.orgId)).toBe(1);

			stubNetwork(vi, { routes: { "https://api.stripe.com/v1/subscriptions/": () => new Response("upstream down", { status: 502 }) } });
			await runScheduled(env);
			expect(await queued(t.orgId)).toBe(1);
			expect([await subStatus(live), await subStatus(gone)]).toEqual(["active", "active"]);
			expect(stripeApi.checkout.subscriptions.get(live)).toBe("active");

			stubNetwork(vi, { routes: stripeApi.routes });
			await runScheduled(env);
			expect(stripeApi.checkout.subscriptions.get(live)).toBe("canceled");
			expect([await subStatus(live), await subStatus(gone)]).toEqual(["canceled", "canceled"]);
			// The one already ended: the cancellation was refused, so Stripe was asked what it is.
			expect(callsFor(gone)).toEqual([`/v1/subscriptions/${gone}`, `/v1/subscriptions/${gone}`]);
			expect(await queued(t.orgId)).toBe(0);
		});

		it("a subscription made for an organization already deleted (in Stripe's Dashboard, say): its event queues it again, and it is canceled", async () => {
			const t = await subscriber();
			await deleteInClerk(t.orgId);
			await runScheduled(env);
			expect(await queued(t.orgId)).toBe(0);
			const sub = t.sub("late");
			stripeApi.checkout.subscriptions.set(sub, "active");
			await deliver([msg(subEvent("customer.subscription.created", t.orgId, { sub, plan: "pro", created: Math.floor(Date.now() / 1000) }))]);
			expect(await queued(t.orgId)).toBe(1);
			await runScheduled(env);
			expect(stripeApi.checkout.subscriptions.get(sub)).toBe("canceled");
			expect(await subStatus(sub)).toBe("canceled");
			expect(await queued(t.orgId)).toBe(0);
		});

		it("a Checkout found paid whose webhooks never arrive: the subscription its session names is canceled, with a final invoice", async () => {
			const t = await subscriber();
			const session = await checkout(t);
			expect(session.status, session.text).toBe(201);
			const sub = stripeApi.checkout.pay(session.json.id);
			stripeApi.checkout.subscriptions.set(sub, "active");
			await deleteInClerk(t.orgId);
			await runScheduled(env);
			expect(stripeApi.checkout.subscriptions.get(sub)).toBe("canceled");
			const cancel = stripeApi.calls.find((c) => c.url.includes(`/v1/subscriptions/${sub}?`));
			expect(Object.fromEntries(new URL(cancel!.url).searchParams)).toEqual({ invoice_now: "true", prorate: "false" });
			expect(await subStatus(sub)).toBe("canceled");
			expect(await queued(t.orgId)).toBe(0);
			// Its webhooks arriving late change nothing: the subscription stays canceled; the run they queue finds nothing left.
			await deliver([msg(subEvent("customer.subscription.created", t.orgId, { sub, plan: "pro", created: Math.floor(Date.now() / 1000) }))]);
			expect(await queued(t.orgId)).toBe(1);
			const calls = stripeApi.calls.length;
			await runScheduled(env);
			expect(await subStatus(sub)).toBe("canceled");
			expect(await queued(t.orgId)).toBe(0);
			expect(stripeApi.calls).toHaveLength(calls);
		});

		it("a Checkout opened while the organization is being deleted (and the cron runs in between) is expired", async () => {
			const t = await subscriber();
			const create = stripeApi.routes["https://api.stripe.com/v1/checkout/sessions"]!;
			let raced = false;
			stubNetwork(vi, {
				routes: {
					...stripeApi.routes,
					"https://api.stripe.com/v1/checkout/sessions": async (req) => {
						const res = await create(req);
						if (!raced && req.method === "POST" && new URL(req.url).pathname === "/v1/checkout/sessions") {
							raced = true;
							// Between Stripe creating the session and the Worker recording it.
							await deleteInClerk(t.orgId);
							await runScheduled(env);
						}
						return res;
					},
				},
			});
			const session = await checkout(t);
			expect(session.status, session.text).toBe(201);
			expect(await queued(t.orgId)).toBe(1);
			await runScheduled(env);
			expect(stripeApi.checkout.sessions.get(session.json.id)?.status).toBe("expired");
			expect(await queued(t.orgId)).toBe(0);
		});

		it("organizations Stripe keeps refusing go behind the others: each run tries at most three of them, and the rest get through", async () => {
			const base = Date.now() - 60_000;
			const stuck: string[] = [];
			for (let i = 0; i < 7; i++) {
				const org = uid("org_stuck");
				const sub = `sub_stuck_${i}_${org.slice(-6)}`;
				stuck.push(sub);
				await env.DB.batch([
					env.DB.prepare("INSERT INTO organizations (id, source_updated_at, created_at, updated_at, deleted_at) VALUES (?, 0, ?, ?, ?)").bind(org, base, base, base),
					env.DB.prepare(
						"INSERT INTO subscriptions (organization_id, provider, subscription_id, plan, status, source_updated_at, updated_at) VALUES (?, 'stripe', ?, 'pro', 'active', 0, ?)",
					).bind(org, sub, base),
					env.DB.prepare("INSERT INTO billing_endings (organization_id, created_at) VALUES (?, ?)").bind(org, base + i),
				]);
			}
			const t = await subscriber();
			const live = t.sub("live");
			await deliver([msg(subEvent("customer.subscription.created", t.orgId, { sub: live, plan: "pro", created: 1_800_000_000 }))]);
			stripeApi.checkout.subscriptions.set(live, "active");
			const subs = stripeApi.routes["https://api.stripe.com/v1/subscriptions/"]!;
			let refused = 0;
			stubNetwork(vi, {
				routes: {
					...stripeApi.routes,
					// A refusal that is not a 400/404 (a restricted key's 403, say), every time.
					"https://api.stripe.com/v1/subscriptions/": (req) => {
						if (!stuck.some((s) => req.url.includes(s))) return subs(req);
						refused++;
						return Response.json({ error: { type: "invalid_request_error", message: "forbidden" } }, { status: 403 });
					},
				},
			});
			await deleteInClerk(t.orgId);
			const tried: number[] = [];
			for (let run = 0; run < 4 && stripeApi.checkout.subscriptions.get(live) !== "canceled"; run++) {
				const before = refused;
				await runScheduled(env);
				tried.push(refused - before);
			}
			expect(stripeApi.checkout.subscriptions.get(live)).toBe("canceled");
			// At most three failed organizations a run (a 403 is not retried), seven queued ahead of it.
			expect(tried.length).toBeGreaterThanOrEqual(3);
			expect(Math.max(...tried)).toBeLessThanOrEqual(3);
			expect(await env.DB.prepare(`SELECT count(*) AS n FROM billing_endings WHERE organization_id IN (SELECT organization_id FROM subscriptions WHERE subscription_id LIKE 'sub_stuck_%')`).first()).toMatchObject({ n: 7 });
		});

		it("a live organization is not queued by its subscription events", async () => {
			const t = await subscriber();
			await deliver([msg(subEvent("customer.subscription.created", t.orgId, { sub: t.sub("a"), plan: "pro", created: 1_800_000_000 }))]);
			expect(await queued(t.orgId)).toBe(0);
		});
	});

	type StripeEvent = ReturnType<typeof subEvent>;
	it.each<[string, (e: StripeEvent) => unknown]>([
		["no id", (e) => ({ ...e, id: undefined })],
		["no type", (e) => ({ ...e, type: undefined })],
		["no created", (e) => ({ ...e, created: undefined })],
		["created not a number", (e) => ({ ...e, created: "yesterday" })],
		["not an object", () => []],
	])("a signed Stripe body with %s answers 400, nothing queued", async (_n, mutate) => {
		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send");
		const raw = JSON.stringify(mutate(subEvent("customer.subscription.updated", "org_x", { sub: "sub_x", plan: "pro", created: 1 })));
		const res = await call("POST", "/api/webhooks/stripe", {
			body: raw,
			headers: { "content-type": "application/json", "stripe-signature": await sign(raw) },
		});
		expect(res.status, res.text).toBe(400);
		expect(res.headers.get("content-type")).toBe("application/problem+json");
		expect(send).not.toHaveBeenCalled();
	});

	// Secrets are passed through untrimmed (src/env.ts): Stripe's signature is made with the secret as is.
	it("a webhook secret with surrounding whitespace is used as is (not trimmed)", async () => {
		const secret = ` ${TEST_STRIPE.webhookSecret}_padded \n`;
		vi.spyOn(env.WEBHOOK_QUEUE, "send").mockResolvedValue(undefined as never);
		const raw = JSON.stringify(subEvent("customer.subscription.updated", "org_x", { sub: "sub_x", plan: "pro", created: 1 }));
		const res = await callWithEnv({ STRIPE_WEBHOOK_SECRET: secret }, "POST", "/api/webhooks/stripe", {
			body: raw,
			headers: { "content-type": "application/json", "stripe-signature": await sign(raw, secret) },
		});
		expect(res.status, res.text).toBe(202);
	});

	it("migration 0007 keeps existing one-per-organization rows, keyed by their subscription id", async () => {
		// Replays 0004's subscriptions table and 0007 on a copy under another name.
		const all = env.TEST_MIGRATIONS;
		const m4 = all.find((m) => m.name.startsWith("0004_"))!;
		const m7 = all.find((m) => m.name.startsWith("0007_"))!;
		const suffix = uid("t").replace(/[^a-z0-9_]/gi, "");
		const rename = (q: string) => q.replaceAll("subscriptions", `subs_${suffix}`);
		const create = m4.queries.filter((q) => q.includes("`subscriptions`"));
		for (const q of create) await env.DB.prepare(rename(q)).run();
		const old = `subs_${suffix}`;
		await env.DB.batch([
			env.DB.prepare(
				`INSERT INTO ${old} (organization_id, customer_id, subscription_id, plan, status, current_period_end, source_updated_at, updated_at)
				 VALUES ('org_a', 'cus_a', 'sub_a', 'pro', 'active', 1900000000000, 1800000000000, 1), ('org_b', 'cus_b', NULL, 'enterprise', 'incomplete', NULL, 0, 2)`,
			),
		]);
		for (const q of m7.queries) await env.DB.prepare(rename(q)).run();
		const rows = await env.DB.prepare(
			`SELECT organization_id, customer_id, subscription_id, plan, status, current_period_end, source_updated_at FROM ${old} ORDER BY organization_id`,
		).all();
		expect(rows.results).toEqual([
			{
				organization_id: "org_a",
				customer_id: "cus_a",
				subscription_id: "sub_a",
				plan: "pro",
				status: "active",
				current_period_end: 1_900_000_000_000,
				source_updated_at: 1_800_000_000_000,
			},
			{
				organization_id: "org_b",
				customer_id: "cus_b",
				subscription_id: "pending_org_b",
				plan: "enterprise",
				status: "incomplete",
				current_period_end: null,
				source_updated_at: 0,
			},
		]);
		// A second subscription of the same organization now fits.
		await env.DB.prepare(
			`INSERT INTO ${old} (organization_id, subscription_id, plan, status, source_updated_at, updated_at) VALUES ('org_a', 'sub_a2', 'enterprise', 'active', 1, 1)`,
		).run();
		await env.DB.prepare(`DROP TABLE ${old}`).run();
	});
});

describe("Razorpay and Stripe webhooks: the signature before the per-IP limit", () => {
	const stripe = new Stripe(TEST_STRIPE.secretKey);
	const subtle = Stripe.createSubtleCryptoProvider();
	const strict = { RATE_LIMIT_MODE: "strict" };
	const stripeEvent = () =>
		JSON.stringify({ id: `evt_${uid("s").slice(-16)}`, object: "event", type: "invoice.paid", created: Math.floor(Date.now() / 1000), data: { object: {} } });
	const razorpayEvent = () => JSON.stringify({ event: "payment.captured", payload: {}, created_at: Math.floor(Date.now() / 1000) });
	const signedStripe = async (ip: string) => {
		const raw = stripeEvent();
		const sig = await stripe.webhooks.generateTestHeaderStringAsync({ payload: raw, secret: TEST_STRIPE.webhookSecret, cryptoProvider: subtle });
		return callWithEnv(strict, "POST", "/api/webhooks/stripe", { body: raw, headers: { "stripe-signature": sig, "cf-connecting-ip": ip } });
	};
	const signedRazorpay = async (ip: string) => {
		const raw = razorpayEvent();
		const sig = await hmac(TEST_RAZORPAY.webhookSecret, raw);
		return callWithEnv(strict, "POST", "/api/webhooks/razorpay", {
			body: raw,
			headers: { "x-razorpay-signature": sig, "x-razorpay-event-id": uid("evt"), "cf-connecting-ip": ip },
		});
	};

	it("signed deliveries are accepted, with no RateLimit-* and no token spent, after unsigned and badly signed traffic from their IP used the budget up (429)", { timeout: 60_000 }, async () => {
		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send").mockResolvedValue(undefined as never);
		const ip = `203.0.113.${1 + Math.floor(Math.random() * 250)}`;
		const first = await signedStripe(ip);
		expect(first.status, first.text).toBe(202);
		expect(first.headers.get("ratelimit-limit")).toBeNull();

		// A badly signed request spends a token: the budget is whole, as no signed one took from it.
		const forged = await callWithEnv(strict, "POST", "/api/webhooks/stripe", {
			body: stripeEvent(),
			headers: { "stripe-signature": `t=${Math.floor(Date.now() / 1000)},v1=${"0".repeat(64)}`, "cf-connecting-ip": ip },
		});
		expect(forged.status, forged.text).toBe(401);
		expect(forged.headers.get("ratelimit-limit")).toBe("600");
		expect(Number(forged.headers.get("ratelimit-remaining"))).toBe(599);
		// So does a body refused before its signature is read (over the cap, not UTF-8, not JSON).
		const big = await callWithEnv(strict, "POST", "/api/webhooks/razorpay", {
			body: JSON.stringify({ event: "payment.captured", pad: "x".repeat(100 * 1024) }),
			headers: { "x-razorpay-signature": "0".repeat(64), "cf-connecting-ip": ip },
		});
		expect(big.status, big.text).toBe(413);
		expect(Number(big.headers.get("ratelimit-remaining"))).toBe(598);
		const latin1 = await callWithEnv(strict, "POST", "/api/webhooks/stripe", {
			body: new Uint8Array([0x7b, 0xff, 0x7d]),
			headers: { "stripe-signature": `t=${Math.floor(Date.now() / 1000)},v1=${"0".repeat(64)}`, "cf-connecting-ip": ip },
		});
		expect(latin1.status, latin1.text).toBe(400);
		expect(Number(latin1.headers.get("ratelimit-remaining"))).toBe(597);
		const form = await callWithEnv(strict, "POST", "/api/webhooks/stripe", {
			body: "a=1",
			headers: { "stripe-signature": `t=${Math.floor(Date.now() / 1000)},v1=${"0".repeat(64)}`, "cf-connecting-ip": ip, "content-type": "application/x-www-form-urlencoded" },
		});
		expect(form.status, form.text).toBe(415);
		expect(Number(form.headers.get("ratelimit-remaining"))).toBe(596);

		// Unsigned traffic, to either provider, is refused past 600 a minute.
		const unsigned: number[] = [];
		for (let i = 0; i < 1_500 && !unsigned.includes(429); i += 62) {
			const batch = Array.from({ length: 62 }, (_, j) =>
				callWithEnv(strict, "POST", j % 2 ? "/api/webhooks/stripe" : "/api/webhooks/razorpay", { body: "{}", headers: { "cf-connecting-ip": ip } }),
			);
			unsigned.push(...(await Promise.all(batch)).map((r) => r.status));
		}
		expect(unsigned).toContain(429);
		expect(unsigned.filter((s) => s !== 401 && s !== 429)).toEqual([]);
		const limited = await callWithEnv(strict, "POST", "/api/webhooks/razorpay", {
			body: razorpayEvent(),
			headers: { "x-razorpay-signature": "0".repeat(64), "cf-connecting-ip": ip },
		});
		expect(limited.status, limited.text).toBe(429);
		expect(limited.headers.get("retry-after")).toMatch(/^\d+$/);

		// ... while correctly signed deliveries from that IP are still queued.
		for (const res of await Promise.all([signedStripe(ip), signedRazorpay(ip), signedStripe(ip)])) {
			expect(res.status, res.text).toBe(202);
			expect(res.headers.get("ratelimit-remaining")).toBeNull();
		}
		expect(send).toHaveBeenCalledTimes(4);
	});
});
