import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { WebhookMessage } from "../../src/queue/messages";
import type { AuditMessage } from "../../src/queue/tenant-events";
import { MAX_ORDER_AMOUNT } from "../../src/services/razorpay";
import { uid } from "../helpers/factories";
import { fakeRazorpay, type RazorpayOrderRequest, stubNetwork } from "../helpers/network";
import { deliver, eventRow } from "../helpers/queue";
import { type Body, call, type Problem } from "../helpers/request";
import { storeSql } from "../helpers/store";
import { seedTenant } from "../helpers/tenant";
import { captureTenantEvents, deliverTenant } from "../helpers/tenant-queue";
import { TEST_RAZORPAY } from "../helpers/vars";

// Issue 16, item 5 (payments): amount/currency cross-check on capture, who may verify, bad signatures
// leave the order alone, amounts stay exact integers.

const hex = (buf: ArrayBuffer) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
async function hmac(secret: string, data: string) {
	const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
		"sign",
	]);
	return hex(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(data)));
}

/** How the Razorpay fake answers an order: normally an echo of the request (amount and currency). */
type Echo = (body: RazorpayOrderRequest) => { amount: unknown; currency: unknown };
let razorpayEcho: Echo;
let razorpay: ReturnType<typeof fakeRazorpay>;

beforeEach(() => {
	razorpayEcho = (body) => body;
	razorpay = fakeRazorpay();
	const orders = razorpay.routes["https://api.razorpay.com/v1/orders"]!;
	stubNetwork(vi, {
		routes: {
			// The shared fake (recorded shape), with the amount and currency of its answer rewritten by razorpayEcho.
			"https://api.razorpay.com/v1/orders": async (req) => {
				const res = await orders(req);
				if (!res.ok) return res;
				const order = await res.json<Record<string, unknown> & RazorpayOrderRequest>();
				const { amount, currency } = razorpayEcho(order);
				return Response.json({ ...order, amount, amount_due: amount, currency });
			},
		},
	});
});

type PaymentOrder = Body<"POST /api/payments/orders">;

/** Tokens with the organization active, as the payments routes need; otherMember did not create the orders. */
const tenant = () =>
	seedTenant({
		members: {
			admin: { role: "org:admin", activeOrg: true },
			member: { role: "org:member", activeOrg: true },
			otherMember: { role: "org:member", activeOrg: true },
		},
	});

const orderStatus = async (razorpayOrderId: string) =>
	(
		await env.DB.prepare("SELECT status FROM payment_orders WHERE razorpay_order_id = ?")
			.bind(razorpayOrderId)
			.first<{ status: string }>()
	)?.status;

const captured = (razorpayOrderId: string, paymentId: string, amount: unknown, currency: unknown, event = "payment.captured") =>
	JSON.stringify({
		entity: "event",
		account_id: "acc_test",
		event,
		contains: ["payment"],
		payload: {
			payment: {
				entity: { id: paymentId, entity: "payment", amount, currency, status: "captured", order_id: razorpayOrderId },
			},
		},
		created_at: Math.floor(Date.now() / 1000),
	});

/** Through the signed route onto the (captured) queue, then through the consumer. */
async function webhook(raw: string) {
	const send = vi.spyOn(env.WEBHOOK_QUEUE, "send").mockResolvedValue(undefined as never);
	const res = await call("POST", "/api/webhooks/razorpay", {
		body: raw,
		headers: {
			"content-type": "application/json",
			"x-razorpay-signature": await hmac(TEST_RAZORPAY.webhookSecret, raw),
			"x-razorpay-event-id": uid("evt"),
		},
	});
	expect(res.status, res.text).toBe(202);
	const msg = send.mock.calls.at(-1)![0] as WebhookMessage;
	send.mockRestore();
	await deliver([msg]);
	return msg.svixId;
}

describe("Razorpay capture cross-check (webhook)", () => {
	it("a signed payment.captured whose amount or currency differs from the order does not pay it; it is a security event", async () => {
		const t = await tenant();
		const sent = captureTenantEvents(vi);
		const order = (await call<PaymentOrder>("POST", "/api/payments/orders", { token: t.member.token, body: { amount: 50_000, currency: "INR" } }))
			.json;
		expect(order.status).toBe("CREATED");

		// 100 USD against a 50,000 INR order; then each half of the mismatch alone; then a figure that
		// JSON cannot carry exactly (above 2^53) and a capture that does not say its amount.
		const cases: [unknown, unknown][] = [
			[100, "USD"],
			[100, "INR"],
			[50_000, "USD"],
			[2 ** 53 + 2, "INR"], // beyond 2^53: no longer an exact integer
			[undefined, "INR"],
		];
		for (const [i, [amount, currency]] of cases.entries()) {
			await webhook(captured(order.razorpayOrderId, `pay_mis${i}`, amount, currency));
			expect(await orderStatus(order.razorpayOrderId), `case ${i}`).toBe("CREATED");
		}
		// order.paid is cross-checked the same way.
		await webhook(captured(order.razorpayOrderId, "pay_mis_op", 100, "USD", "order.paid"));
		expect(await orderStatus(order.razorpayOrderId)).toBe("CREATED");
		expect(
			await env.DB.prepare("SELECT count(*) AS n FROM payment_transactions WHERE payment_order_id = ?")
				.bind(order.paymentOrderId)
				.first(),
		).toEqual({ n: 0 });

		const audits = sent.filter((m): m is AuditMessage => m.kind === "audit" && m.action === "security.payment_mismatch");
		expect(audits).toHaveLength(cases.length + 1);
		expect(audits[0]).toMatchObject({
			organizationId: t.orgId,
			actorType: "system",
			targetType: "payment_order",
			targetId: order.paymentOrderId,
			before: { status: "CREATED", amount: 50_000, currency: "INR" },
			after: { event: "payment.captured", paymentId: "pay_mis0", amount: 100, currency: "USD" },
		});
		expect(sent.some((m) => m.kind === "audit" && m.action === "payment.captured")).toBe(false);

		// The security events land in the organization's audit log (in its store).
		await deliverTenant(audits);
		const logged = await storeSql(t.orgId, "SELECT count(*) AS n FROM audit_logs WHERE organization_id = ? AND action = 'security.payment_mismatch'", t.orgId);
		expect(logged).toEqual([{ n: cases.length + 1 }]);

		// The right amount and currency still pay it.
		await webhook(captured(order.razorpayOrderId, "pay_ok", 50_000, "INR"));
		expect(await orderStatus(order.razorpayOrderId)).toBe("PAID");
		// Razorpay reports the same capture twice (payment.captured, then order.paid): one audit entry.
		await webhook(captured(order.razorpayOrderId, "pay_ok", 50_000, "INR", "order.paid"));
		const paid = sent.filter((m): m is AuditMessage => m.kind === "audit" && m.action === "payment.captured");
		await deliverTenant(paid);
		const entries = await storeSql(t.orgId, "SELECT count(*) AS n FROM audit_logs WHERE organization_id = ? AND action = 'payment.captured'", t.orgId);
		expect(entries).toEqual([{ n: 1 }]);
	});

	it("a mismatching capture after PAID changes nothing either", async () => {
		const t = await tenant();
		const order = (await call<PaymentOrder>("POST", "/api/payments/orders", { token: t.member.token, body: { amount: 20_000 } })).json;
		await webhook(captured(order.razorpayOrderId, "pay_first", 20_000, "INR"));
		expect(await orderStatus(order.razorpayOrderId)).toBe("PAID");
		const sent = captureTenantEvents(vi);
		await webhook(captured(order.razorpayOrderId, "pay_second", 1, "INR"));
		expect(await orderStatus(order.razorpayOrderId)).toBe("PAID");
		expect(sent.some((m) => m.kind === "audit" && m.action === "security.payment_mismatch")).toBe(true);
		expect(
			await env.DB.prepare("SELECT count(*) AS n FROM payment_transactions WHERE razorpay_payment_id = 'pay_second'").first(),
		).toEqual({ n: 0 });
	});
});

describe("Razorpay refunds (webhook)", () => {
	it("refund.processed is recorded in the organization's audit log once per refund; the order stays PAID", async () => {
		const t = await tenant();
		const order = (await call<PaymentOrder>("POST", "/api/payments/orders", { token: t.member.token, body: { amount: 30_000 } })).json;
		await webhook(captured(order.razorpayOrderId, "pay_r1", 30_000, "INR"));
		const sent = captureTenantEvents(vi);
		const refund = (id: string, amount: number, refunded: number) =>
			JSON.stringify({
				entity: "event",
				account_id: "acc_test",
				event: "refund.processed",
				contains: ["refund", "payment"],
				payload: {
					refund: { entity: { id, entity: "refund", amount, currency: "INR", payment_id: "pay_r1", status: "processed", created_at: 1_700_000_000 } },
					payment: {
						entity: {
							id: "pay_r1",
							entity: "payment",
							amount: 30_000,
							currency: "INR",
							status: refunded === 30_000 ? "refunded" : "captured",
							order_id: order.razorpayOrderId,
							amount_refunded: refunded,
							refund_status: refunded === 30_000 ? "full" : "partial",
						},
					},
				},
				created_at: Math.floor(Date.now() / 1000),
			});
		await webhook(refund("rfnd_a", 10_000, 10_000));
		await webhook(refund("rfnd_b", 20_000, 30_000));
		// Razorpay delivers the second one again.
		const again = await webhook(refund("rfnd_b", 20_000, 30_000));
		expect(await eventRow(again)).toMatchObject({ outcome: "processed" });
		const refunds = sent.filter((m): m is AuditMessage => m.kind === "audit" && m.action === "payment.refunded");
		await deliverTenant(refunds);
		const entries = await storeSql<{ after: string }>(
			t.orgId,
			"SELECT after FROM audit_logs WHERE organization_id = ? AND action = 'payment.refunded' ORDER BY seq",
			t.orgId,
		);
		expect(entries.map((e) => JSON.parse(e.after))).toEqual([
			{ refundId: "rfnd_a", paymentId: "pay_r1", razorpayOrderId: order.razorpayOrderId, amount: 10_000, currency: "INR", amountRefunded: 10_000, fullyRefunded: false },
			{ refundId: "rfnd_b", paymentId: "pay_r1", razorpayOrderId: order.razorpayOrderId, amount: 20_000, currency: "INR", amountRefunded: 30_000, fullyRefunded: true },
		]);
		expect(await orderStatus(order.razorpayOrderId)).toBe("PAID");
	});
});

describe("POST /api/payments/verify: who may verify, and a bad signature changes nothing", () => {
	const verifyBody = async (razorpayOrderId: string, paymentId: string) => ({
		razorpay_order_id: razorpayOrderId,
		razorpay_payment_id: paymentId,
		razorpay_signature: await hmac(TEST_RAZORPAY.keySecret, `${razorpayOrderId}|${paymentId}`),
	});

	it("a member who neither created the order nor has org:billing:manage gets 404, even with a valid signature", async () => {
		const t = await tenant();
		const order = (await call<PaymentOrder>("POST", "/api/payments/orders", { token: t.member.token, body: { amount: 10_000 } })).json;
		const body = await verifyBody(order.razorpayOrderId, "pay_v1");
		const junk = { ...body, razorpay_signature: "0".repeat(64) };

		for (const b of [body, junk]) {
			const res = await call<Problem>("POST", "/api/payments/verify", { token: t.otherMember.token, body: b });
			expect(res.status, res.text).toBe(404);
			expect(res.headers.get("content-type")).toBe("application/problem+json");
			// Same answer as for an order that does not exist.
			const unknown = await call<Problem>("POST", "/api/payments/verify", {
				token: t.otherMember.token,
				body: { ...b, razorpay_order_id: "order_doesnotexist" },
			});
			expect(unknown.status).toBe(404);
			expect(unknown.json.detail).toBe(res.json.detail);
		}
		expect(await orderStatus(order.razorpayOrderId)).toBe("CREATED");

		// The creator may.
		const own = await call("POST", "/api/payments/verify", { token: t.member.token, body });
		expect(own.status, own.text).toBe(200);
		expect(await orderStatus(order.razorpayOrderId)).toBe("PAID");
	});

	it("a member with org:billing:manage (admin) may verify an order someone else created", async () => {
		const t = await tenant();
		const order = (await call<PaymentOrder>("POST", "/api/payments/orders", { token: t.member.token, body: { amount: 10_000 } })).json;
		const res = await call<Body<"POST /api/payments/verify">>("POST", "/api/payments/verify", {
			token: t.admin.token,
			body: await verifyBody(order.razorpayOrderId, "pay_a"),
		});
		expect(res.status, res.text).toBe(200);
		expect(res.json).toMatchObject({ status: "PAID", paymentOrderId: order.paymentOrderId });
	});

	it("a bad signature answers 400 and leaves a CREATED order CREATED (audited as payment.verification_failed)", async () => {
		const t = await tenant();
		const order = (await call<PaymentOrder>("POST", "/api/payments/orders", { token: t.member.token, body: { amount: 10_000 } })).json;
		const sent = captureTenantEvents(vi);
		const body = await verifyBody(order.razorpayOrderId, "pay_b");
		for (const token of [t.member.token, t.admin.token]) {
			const bad = await call("POST", "/api/payments/verify", {
				token,
				body: { ...body, razorpay_signature: "0".repeat(64) },
			});
			expect(bad.status, bad.text).toBe(400);
			expect(bad.headers.get("content-type")).toBe("application/problem+json");
			expect(await orderStatus(order.razorpayOrderId)).toBe("CREATED");
		}
		expect(sent.filter((m) => m.kind === "audit" && m.action === "payment.verification_failed")).toHaveLength(2);
		expect(
			await env.DB.prepare("SELECT count(*) AS n FROM payment_transactions WHERE payment_order_id = ?")
				.bind(order.paymentOrderId)
				.first(),
		).toEqual({ n: 0 });
		// The genuine signature afterwards still pays it.
		expect((await call("POST", "/api/payments/verify", { token: t.member.token, body })).status).toBe(200);
		expect(await orderStatus(order.razorpayOrderId)).toBe("PAID");
	});
});

describe("payment amounts stay exact integers", () => {
	it("amounts above the documented bound or beyond 2^53 are refused (400) before Razorpay is called", async () => {
		const t = await tenant();
		// 9990999999990009 is sent as written: JSON.parse rounds it, the server must still refuse it.
		for (const amount of [String(MAX_ORDER_AMOUNT + 1), "9990999999990009", String(Number.MAX_SAFE_INTEGER + 2), "100.5"]) {
			const res = await call("POST", "/api/payments/orders", {
				token: t.member.token,
				body: `{"amount":${amount},"currency":"INR"}`,
			});
			expect(res.status, `${amount}: ${res.text}`).toBe(400);
			expect(razorpay.calls).toHaveLength(0);
		}
		const max = await call<PaymentOrder>("POST", "/api/payments/orders", { token: t.member.token, body: { amount: MAX_ORDER_AMOUNT } });
		expect(max.status, max.text).toBe(201);
		expect(max.json.amount).toBe(MAX_ORDER_AMOUNT);
	});

	it("an order Razorpay answers with another amount or currency than asked is not stored (503)", async () => {
		const t = await tenant();
		const echoes: Echo[] = [
			(b) => ({ amount: 1, currency: b.currency }),
			(b) => ({ amount: b.amount, currency: "USD" }),
			(b) => ({ amount: 9_990_999_999_990_008, currency: b.currency }),
		];
		for (const echo of echoes) {
			razorpayEcho = echo;
			const res = await call("POST", "/api/payments/orders", { token: t.member.token, body: { amount: 50_000, currency: "INR" } });
			expect(res.status, res.text).toBe(503);
		}
		expect(
			await env.DB.prepare("SELECT count(*) AS n FROM payment_orders WHERE organization_id = ?").bind(t.orgId).first(),
		).toEqual({ n: 0 });
	});
});
