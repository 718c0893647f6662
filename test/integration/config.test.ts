import { describe, expect, it, vi } from "vitest";
import { envelope, svixHeaders, userData } from "../helpers/clerk";
import { uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { fakeRazorpay, fakeStripe, stubNetwork } from "../helpers/network";
import { callWithEnv, get, type Problem } from "../helpers/request";
import { seedTenant } from "../helpers/tenant";
import { TEST_WEBHOOK_SECRET } from "../helpers/vars";

describe("configuration errors", () => {
	const bad = { CLERK_WEBHOOK_SECRET: "leaky-value", RAZORPAY_API_BASE: "ftp://leaky-host" };

	it("liveness, the API document and /docs still answer with a bad variable", async () => {
		const health = await callWithEnv(bad, "GET", "/api/health");
		expect(health.status, health.text).toBe(200);
		expect(health.json).toMatchObject({ status: "ok" });
		expect((await callWithEnv(bad, "GET", "/api/openapi.json")).status).toBe(200);
		expect((await callWithEnv(bad, "GET", "/docs")).status).toBe(200);
	});

	it("readiness answers 503 problem+json naming each misconfigured variable, never its value", async () => {
		const res = await callWithEnv<Problem>(bad, "GET", "/api/health/ready");
		expect(res.status, res.text).toBe(503);
		expect(res.headers.get("content-type")).toBe("application/problem+json");
		expect(res.json).toMatchObject({ status: 503, code: "NOT_READY" });
		expect(res.json.errors?.map((e) => e.path).sort()).toEqual(["CLERK_WEBHOOK_SECRET", "RAZORPAY_API_BASE"]);
		expect(res.text).not.toContain("leaky");
		const missing = await callWithEnv<Problem>({ CLERK_ISSUER: "", CLERK_JWKS_URL: " " }, "GET", "/api/health/ready");
		expect(missing.status, missing.text).toBe(503);
		expect(missing.json.errors?.map((e) => e.path).sort()).toEqual(["CLERK_ISSUER", "CLERK_JWKS_URL"]);
	});

	it("readiness answers 200 when the configuration is complete", async () => {
		const res = await get("/api/health/ready");
		expect(res.status, res.text).toBe(200);
		expect(res.json).toEqual({ status: "ok" });
	});

	it("other routes answer 500 BAD_ENVIRONMENT naming the variable", async () => {
		const t = await seedTenant();
		const res = await callWithEnv<Problem>(bad, "GET", `/api/orgs/${t.orgId}`, { token: t.admin.token });
		expect(res.status).toBe(500);
		expect(res.json).toMatchObject({ code: "BAD_ENVIRONMENT" });
		expect(res.json.detail).toContain("RAZORPAY_API_BASE");
		expect(res.text).not.toContain("leaky");
	});
});

describe("Clerk's names", () => {
	it("a Clerk webhook verifies with CLERK_WEBHOOK_SIGNING_SECRET alone", async () => {
		const body = JSON.stringify(envelope("user.created", userData(uid("user"))));
		const res = await callWithEnv(
			{ CLERK_WEBHOOK_SECRET: "", CLERK_WEBHOOK_SIGNING_SECRET: TEST_WEBHOOK_SECRET },
			"POST",
			"/api/webhooks/clerk",
			{ body, headers: svixHeaders(body) },
		);
		expect(res.status, res.text).toBe(202);
	});

	it("the JWKS URL and issuer come from CLERK_PUBLISHABLE_KEY when only it is set", async () => {
		const host = "clerk.pk.example";
		const fetchSpy = stubNetwork(vi, {
			routes: { [`https://${host}/.well-known/jwks.json`]: async () => fetch("https://clerk.test.example/.well-known/jwks.json") },
		});
		const token = await signToken({ userId: "user_pk", issuer: `https://${host}` });
		const res = await callWithEnv(
			{ CLERK_ISSUER: "", CLERK_JWKS_URL: "", CLERK_PUBLISHABLE_KEY: `pk_live_${btoa(`${host}$`)}` },
			"GET",
			"/api/me",
			{ token },
		);
		expect(res.status, res.text).toBe(200);
		expect(fetchSpy.mock.calls.some(([u]) => String(u instanceof Request ? u.url : u).startsWith(`https://${host}/`))).toBe(true);
	});
});

describe("provider base URLs", () => {
	const tenant = () => seedTenant({ members: { admin: { role: "org:admin", activeOrg: true } } });

	it("Razorpay orders go to RAZORPAY_API_BASE", async () => {
		const razorpay = fakeRazorpay();
		const handler = razorpay.routes["https://api.razorpay.com/v1/orders"]!;
		stubNetwork(vi, { routes: { "http://razorpay.fake.test:9000/proxy/v1/orders": handler } });
		const t = await tenant();
		const res = await callWithEnv(
			{ RAZORPAY_API_BASE: "http://razorpay.fake.test:9000/proxy/" },
			"POST",
			"/api/payments/orders",
			{ token: t.admin.token, body: { amount: 5000 } },
		);
		expect(res.status, res.text).toBe(201);
		expect(razorpay.calls).toHaveLength(1);
	});

	it("Stripe calls go to STRIPE_API_BASE", async () => {
		const stripe = fakeStripe();
		const handler = stripe.routes["https://api.stripe.com/v1/checkout/sessions"]!;
		stubNetwork(vi, { routes: { "http://stripe.fake.test:9001/v1/checkout/sessions": handler } });
		const t = await tenant();
		const res = await callWithEnv(
			{ STRIPE_API_BASE: "http://stripe.fake.test:9001" },
			"POST",
			`/api/orgs/${t.orgId}/billing/checkout`,
			{ token: t.admin.token, body: { plan: "pro", successUrl: "https://app.example/ok", cancelUrl: "https://app.example/no" } },
		);
		expect(res.status, res.text).toBe(201);
		expect(stripe.calls.map((c) => new URL(c.url).host)).toEqual(["stripe.fake.test:9001"]);
	});

	it("a STRIPE_API_BASE with a path (a proxy under a prefix) keeps it: /v1/… is appended", async () => {
		const stripe = fakeStripe();
		const handler = stripe.routes["https://api.stripe.com/v1/checkout/sessions"]!;
		const seen: string[] = [];
		// The proxy strips its prefix and hands the request to Stripe (the fake).
		stubNetwork(vi, {
			routes: {
				"http://proxy.fake.test/stripe/": (req) => {
					seen.push(new URL(req.url).pathname);
					return handler(new Request(req.url.replace("http://proxy.fake.test/stripe/", "https://api.stripe.com/"), req));
				},
			},
		});
		const t = await tenant();
		const res = await callWithEnv(
			{ STRIPE_API_BASE: "http://proxy.fake.test/stripe/" },
			"POST",
			`/api/orgs/${t.orgId}/billing/checkout`,
			{ token: t.admin.token, body: { plan: "pro", successUrl: "https://app.example/ok", cancelUrl: "https://app.example/no" } },
		);
		expect(res.status, res.text).toBe(201);
		expect(seen).toEqual(["/stripe/v1/checkout/sessions"]);
		expect(stripe.calls).toHaveLength(1);
	});
});
