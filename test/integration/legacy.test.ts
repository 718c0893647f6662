import { beforeEach, describe, expect, it, vi } from "vitest";
import { DEPRECATED_SINCE } from "../../src/routes/legacy/deprecated";
import { uid } from "../helpers/factories";
import { fakeRazorpay, stubNetwork } from "../helpers/network";
import { type Body, call, get, type Problem } from "../helpers/request";
import { seedTenant } from "../helpers/tenant";
import { TEST_RAZORPAY } from "../helpers/vars";

// Clients of the earlier Spring system call these paths and bodies unchanged.

async function hmacHex(secret: string, data: string) {
	const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
	const sig = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(data));
	return [...new Uint8Array(sig)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

let razorpay: ReturnType<typeof fakeRazorpay>;
beforeEach(() => {
	razorpay = fakeRazorpay();
	stubNetwork(vi, { routes: razorpay.routes });
});

const tenant = () =>
	seedTenant({ members: { admin: { role: "org:admin", activeOrg: true }, member: { role: "org:member", activeOrg: true } } });

describe("deprecated aliases", () => {
	it("GET /api/org/:orgId/admin-data answers as /api/orgs/:orgId/admin-data, with Deprecation and Link", async () => {
		const t = await tenant();
		const alias = await get("/api/org/" + t.orgId + "/admin-data", t.admin.token);
		expect(alias.status, alias.text).toBe(200);
		expect(alias.json).toEqual((await get(`/api/orgs/${t.orgId}/admin-data`, t.admin.token)).json);
		expect(alias.headers.get("deprecation")).toBe(DEPRECATED_SINCE);
		expect(alias.headers.get("link")).toBe(`</api/orgs/${t.orgId}/admin-data>; rel="successor-version"`);
		// Same guards: a member is refused, a stranger too; the refusals are marked deprecated as well.
		const member = await get<Problem>(`/api/org/${t.orgId}/admin-data`, t.member.token);
		expect(member.status).toBe(403);
		expect(member.headers.get("deprecation")).toBe(DEPRECATED_SINCE);
		const other = await tenant();
		expect((await get(`/api/org/${t.orgId}/admin-data`, other.admin.token)).status).toBe(403);
		expect((await get(`/api/org/${t.orgId}/admin-data`)).status).toBe(401);
	});

	it("POST /api/payments/create-order {amount, currency, receipt} creates the order like /api/payments/orders", async () => {
		const t = await tenant();
		const res = await call<Body<"POST /api/payments/orders">>("POST", "/api/payments/create-order", {
			token: t.member.token,
			body: { amount: 49900, currency: "INR", receipt: "rcpt_legacy" },
		});
		expect(res.status, res.text).toBe(201);
		expect(res.json).toMatchObject({ entity: "order", amount: 49900, currency: "INR", receipt: "rcpt_legacy", status: "CREATED" });
		expect(res.headers.get("deprecation")).toBe(DEPRECATED_SINCE);
		expect(res.headers.get("link")).toBe('</api/payments/orders>; rel="successor-version"');
		expect(razorpay.calls).toHaveLength(1);
		const fetched = await get<Body<"GET /api/payments/orders/:id">>(`/api/payments/orders/${res.json.paymentOrderId}`, t.member.token);
		expect(fetched.json.razorpayOrderId).toBe(res.json.razorpayOrderId);
		// Same validation and guards as the current route.
		const invalid = await call<Problem>("POST", "/api/payments/create-order", { token: t.member.token, body: { amount: 1 } });
		expect(invalid.status).toBe(400);
		expect((await call("POST", "/api/payments/create-order", { body: { amount: 5000 } })).status).toBe(401);
	});

	it("POST /api/payments/verify also takes camelCase {razorpayOrderId, razorpayPaymentId, razorpaySignature}", async () => {
		const t = await tenant();
		const order = (await call<Body<"POST /api/payments/orders">>("POST", "/api/payments/orders", { token: t.member.token, body: { amount: 10000 } }))
			.json;
		const paymentId = `pay_${uid("p").slice(-14)}`;
		const razorpaySignature = await hmacHex(TEST_RAZORPAY.keySecret, `${order.razorpayOrderId}|${paymentId}`);
		const ok = await call("POST", "/api/payments/verify", {
			token: t.member.token,
			body: { razorpayOrderId: order.razorpayOrderId, razorpayPaymentId: paymentId, razorpaySignature },
		});
		expect(ok.status, ok.text).toBe(200);
		expect(ok.json).toMatchObject({ status: "PAID", paymentId, razorpayOrderId: order.razorpayOrderId });
		// The deprecated form's answers are marked like an alias's (errors too); Checkout's form is not.
		const badCamel = await call<Problem>("POST", "/api/payments/verify", {
			token: t.member.token,
			body: { razorpayOrderId: order.razorpayOrderId, razorpayPaymentId: paymentId, razorpaySignature: "0".repeat(64) },
		});
		const snake = await call("POST", "/api/payments/verify", {
			token: t.member.token,
			body: { razorpay_order_id: order.razorpayOrderId, razorpay_payment_id: paymentId, razorpay_signature: razorpaySignature },
		});
		expect([ok.status, badCamel.status, snake.status]).toEqual([200, 400, 200]);
		for (const res of [ok, badCamel]) {
			expect(res.headers.get("deprecation")).toBe(DEPRECATED_SINCE);
			expect(res.headers.get("link")).toBe('</api/payments/verify>; rel="successor-version"');
		}
		expect(snake.headers.get("deprecation")).toBeNull();
		// A mix of the two forms, or unknown fields, is still a 400.
		const mixed = await call<Problem>("POST", "/api/payments/verify", {
			token: t.member.token,
			body: { razorpayOrderId: order.razorpayOrderId, razorpay_payment_id: paymentId, razorpaySignature },
		});
		expect(mixed.status).toBe(400);
		// Reported field by field against the closer form (here the camelCase one), not as one "Invalid input".
		expect(mixed.json.errors).toEqual([
			{ path: "razorpayPaymentId", message: expect.any(String) },
			{ path: "razorpay_payment_id", message: "unknown field" },
		]);
		// Both forms are in the document: Checkout's names, and the camelCase ones marked deprecated.
		type Doc = { paths: Record<string, Record<string, { requestBody: { content: Record<string, { schema: { anyOf?: unknown[] } }> } }>> };
		const schema = (await get<Doc>("/api/openapi.json")).json.paths["/api/payments/verify"]!.post!.requestBody.content["application/json"]!.schema;
		expect(schema.anyOf).toEqual([
			expect.objectContaining({ required: ["razorpay_order_id", "razorpay_payment_id", "razorpay_signature"], additionalProperties: false }),
			expect.objectContaining({ required: ["razorpayOrderId", "razorpayPaymentId", "razorpaySignature"], additionalProperties: false, deprecated: true }),
		]);
	});

	it("the aliases are documented as deprecated", async () => {
		type Doc = { paths: Record<string, Record<string, { deprecated?: boolean }>> };
		const doc = (await get<Doc>("/api/openapi.json")).json;
		expect(doc.paths["/api/org/{orgId}/admin-data"]?.get?.deprecated).toBe(true);
		expect(doc.paths["/api/payments/create-order"]?.post?.deprecated).toBe(true);
	});
});
