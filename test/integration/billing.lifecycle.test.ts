import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { runScheduled } from "../../src/queue/consumer";
import type { AuditMessage, TenantEvent } from "../../src/queue/tenant-events";
import { PAST_DUE_GRACE_MS, PERIOD_END_LEEWAY_MS } from "../../src/services/plans";
import { uid } from "../helpers/factories";
import { type Handler, stubNetwork } from "../helpers/network";
import { deliver, stripeMessage } from "../helpers/queue";
import { type Body, call, type Problem } from "../helpers/request";
import { captureTenantEvents } from "../helpers/tenant-queue";
import { seedTenant } from "../helpers/tenant";
import { TEST_STRIPE } from "../helpers/vars";

type Billing = Body<"GET /api/orgs/:orgId/billing">;
const DAY = 24 * 60 * 60 * 1000;
const sec = (ms: number) => Math.floor(ms / 1000);

/** A Stripe subscription object (API 2025-03-31+: the period on its items), as the API and webhooks carry it. */
function subscriptionObject(o: {
	id: string;
	customer: string;
	orgId: string;
	plan?: string;
	status?: string;
	periodEnd: number;
	cancelAtPeriodEnd?: boolean;
	trialEnd?: number | null;
	canceledAt?: number | null;
}) {
	return {
		id: o.id,
		object: "subscription",
		customer: o.customer,
		status: o.status ?? "active",
		cancel_at_period_end: o.cancelAtPeriodEnd ?? false,
		cancel_at: o.cancelAtPeriodEnd ? o.periodEnd : null,
		canceled_at: o.canceledAt ?? null,
		trial_end: o.trialEnd ?? null,
		metadata: { organizationId: o.orgId, plan: o.plan ?? "pro" },
		items: {
			object: "list",
			data: [
				{
					id: "si_1",
					object: "subscription_item",
					current_period_start: o.periodEnd - 30 * 86_400,
					current_period_end: o.periodEnd,
					price: { id: "price_1", object: "price", metadata: {} },
				},
			],
			has_more: false,
			url: `/v1/subscription_items?subscription=${o.id}`,
		},
	};
}


/** A tenant whose admin, member and a billing manager (custom role with org:billing:manage only) have tokens. */
async function tenant() {
	const t = await seedTenant({
		members: { admin: "org:admin", member: "org:member", biller: { permissions: ["org:billing:manage"] } },
	});
	const billing = async () => {
		const res = await call<Billing>("GET", `${t.base}/billing`, { token: t.admin.token });
		expect(res.status, res.text).toBe(200);
		return res.json;
	};
	const plan = async () =>
		(await env.DB.prepare("SELECT plan FROM organizations WHERE id = ?").bind(t.orgId).first<{ plan: string }>())!.plan;
	return { ...t, billing, plan, customer: `cus_${t.orgId.slice(-12)}`, sub: `sub_${t.orgId.slice(-12)}` };
}
type T = Awaited<ReturnType<typeof tenant>>;

/** Stores a live Stripe subscription for the tenant as the webhook would have. */
async function seedSubscription(t: T, o: { status?: string; periodEnd?: number; plan?: string } = {}) {
	await env.DB.batch([
		env.DB.prepare(
			`INSERT INTO subscriptions (organization_id, provider, customer_id, subscription_id, plan, status, current_period_end, source_updated_at, updated_at)
			VALUES (?, 'stripe', ?, ?, ?, ?, ?, 1, 1)`,
		).bind(t.orgId, t.customer, t.sub, o.plan ?? "pro", o.status ?? "active", o.periodEnd ?? Date.now() + 20 * DAY),
		env.DB.prepare("UPDATE organizations SET plan = ? WHERE id = ?").bind(o.plan ?? "pro", t.orgId),
	]);
}

/** Stripe's API for the billing routes (recorded response shapes); `calls` records what the Worker sent. */
function fakeStripeBilling(t: T) {
	const calls: { method: string; url: URL; form: URLSearchParams; auth: string | null }[] = [];
	const state = { refuse: false, invoices: [] as Record<string, unknown>[], canceled: false, loseCancelAnswer: false };
	const record = async (req: Request) => {
		const url = new URL(req.url);
		const form = new URLSearchParams(new TextDecoder().decode(await req.arrayBuffer()));
		calls.push({ method: req.method, url, form, auth: req.headers.get("authorization") });
		return url;
	};
	const refused = () =>
		Response.json(
			{
				error: {
					type: "invalid_request_error",
					code: "resource_missing",
					message: "No such subscription: 'sub_x'",
					param: "id",
				},
			},
			{ status: 400 },
		);
	const routes: Record<string, Handler> = {
		"https://api.stripe.com/v1/billing_portal/sessions": async (req) => {
			await record(req);
			const form = calls.at(-1)!.form;
			const id = `bps_${uid("p").slice(-16)}`;
			return Response.json({
				id,
				object: "billing_portal.session",
				configuration: "bpc_1",
				created: sec(Date.now()),
				customer: form.get("customer"),
				flow: null,
				livemode: false,
				locale: null,
				on_behalf_of: null,
				return_url: form.get("return_url"),
				url: `https://billing.stripe.com/p/session/test_${id}`,
			});
		},
		"https://api.stripe.com/v1/subscriptions/": async (req) => {
			await record(req);
			if (state.refuse) return refused();
			const id = decodeURIComponent(new URL(req.url).pathname.split("/").at(-1)!);
			const periodEnd = sec(Date.now() + 20 * DAY);
			const canceled = () =>
				Response.json(subscriptionObject({ id, customer: t.customer, orgId: t.orgId, status: "canceled", periodEnd, canceledAt: sec(Date.now()) }));
			if (req.method === "DELETE") {
				// As Stripe: a subscription already canceled cannot be canceled again.
				if (state.canceled) {
					return Response.json(
						{ error: { type: "invalid_request_error", message: "A canceled subscription can only update its cancellation_details and metadata." } },
						{ status: 400 },
					);
				}
				state.canceled = true;
				// Canceled, but the answer is lost on the way (a 502 from the edge).
				if (state.loseCancelAnswer) return new Response("bad gateway", { status: 502 });
				return canceled();
			}
			if (req.method === "GET" && state.canceled) return canceled();
			const atEnd = calls.at(-1)!.form.get("cancel_at_period_end") === "true";
			return Response.json(subscriptionObject({ id, customer: t.customer, orgId: t.orgId, periodEnd, cancelAtPeriodEnd: atEnd }));
		},
		"https://api.stripe.com/v1/invoices": async (req) => {
			const url = await record(req);
			const limit = Number(url.searchParams.get("limit") ?? 10);
			const after = url.searchParams.get("starting_after");
			if (after && !state.invoices.some((i) => i.id === after)) {
				return Response.json(
					{ error: { type: "invalid_request_error", code: "resource_missing", message: `No such invoice: '${after}'` } },
					{ status: 400 },
				);
			}
			const start = after ? state.invoices.findIndex((i) => i.id === after) + 1 : 0;
			const data = state.invoices.slice(start, start + limit);
			return Response.json({ object: "list", url: "/v1/invoices", has_more: start + limit < state.invoices.length, data });
		},
	};
	stubNetwork(vi, { routes });
	return { calls, state };
}

/** A Stripe invoice (recorded shape, trimmed): API 2025-03-31+, its subscription under parent.subscription_details. */
function invoice(t: T, n: number) {
	const created = sec(Date.now()) - n * 30 * 86_400;
	return {
		id: `in_${t.orgId.slice(-8)}${n}`,
		object: "invoice",
		customer: t.customer,
		number: `ABC-${1000 + n}`,
		status: "paid",
		currency: "usd",
		total: 4900,
		amount_due: 4900,
		amount_paid: 4900,
		amount_remaining: 0,
		created,
		period_start: created - 30 * 86_400,
		period_end: created,
		hosted_invoice_url: `https://invoice.stripe.com/i/acct_1/test_${n}`,
		invoice_pdf: `https://pay.stripe.com/invoice/acct_1/test_${n}/pdf`,
		parent: { type: "subscription_details", subscription_details: { subscription: t.sub, metadata: {} }, quote_details: null },
		lines: { object: "list", data: [], has_more: false },
	};
}

describe("POST /api/orgs/:orgId/billing/portal", () => {
	it("answers 201 with the Billing Portal URL of the organization's Stripe customer (org:billing:manage)", async () => {
		const t = await tenant();
		await seedSubscription(t);
		const stripe = fakeStripeBilling(t);
		const res = await call<Body<"POST /api/orgs/:orgId/billing/portal">>("POST", `${t.base}/billing/portal`, {
			token: t.biller.token,
			body: { returnUrl: "https://app.example/settings/billing" },
		});
		expect(res.status, res.text).toBe(201);
		expect(res.json.url).toMatch(/^https:\/\/billing\.stripe\.com\/p\/session\//);
		expect(stripe.calls).toHaveLength(1);
		expect(stripe.calls[0]!.method).toBe("POST");
		expect(stripe.calls[0]!.auth).toBe(`Bearer ${TEST_STRIPE.secretKey}`);
		expect(stripe.calls[0]!.form.get("customer")).toBe(t.customer);
		expect(stripe.calls[0]!.form.get("return_url")).toBe("https://app.example/settings/billing");
		// Admins hold the permission; without a body the portal's default return URL applies.
		const admin = await call("POST", `${t.base}/billing/portal`, { token: t.admin.token });
		expect(admin.status, admin.text).toBe(201);
		expect(stripe.calls[1]!.form.has("return_url")).toBe(false);
	});

	it("403 without org:billing:manage; 409 problem when the organization has no Stripe customer (Stripe not called)", async () => {
		const t = await tenant();
		const stripe = fakeStripeBilling(t);
		const denied = await call<Problem>("POST", `${t.base}/billing/portal`, { token: t.member.token, body: {} });
		expect(denied.status, denied.text).toBe(403);
		const none = await call<Problem>("POST", `${t.base}/billing/portal`, { token: t.admin.token, body: {} });
		expect(none.status, none.text).toBe(409);
		expect(none.headers.get("content-type")).toBe("application/problem+json");
		expect(none.json.detail).toContain("no Stripe customer");
		expect(stripe.calls).toHaveLength(0);
	});
});

describe("POST /api/orgs/:orgId/billing/cancel", () => {
	it("atPeriodEnd: true sets cancel_at_period_end at Stripe and answers 200 with the subscription state", async () => {
		const t = await tenant();
		await seedSubscription(t);
		const stripe = fakeStripeBilling(t);
		const res = await call<Body<"POST /api/orgs/:orgId/billing/cancel">>("POST", `${t.base}/billing/cancel`, {
			token: t.biller.token,
			body: { atPeriodEnd: true },
		});
		expect(res.status, res.text).toBe(200);
		expect(res.json).toMatchObject({ subscriptionId: t.sub, plan: "pro", status: "active", cancelAtPeriodEnd: true, canceledAt: null });
		expect(res.json.currentPeriodEnd).toBeGreaterThan(Date.now());
		expect(res.json.cancelAt).toBe(res.json.currentPeriodEnd);
		expect(stripe.calls).toHaveLength(1);
		expect(stripe.calls[0]!.method).toBe("POST");
		expect(stripe.calls[0]!.url.pathname).toBe(`/v1/subscriptions/${t.sub}`);
		expect(stripe.calls[0]!.form.get("cancel_at_period_end")).toBe("true");
	});

	it("atPeriodEnd: false cancels now (DELETE /v1/subscriptions/:id)", async () => {
		const t = await tenant();
		await seedSubscription(t);
		const stripe = fakeStripeBilling(t);
		const res = await call<Body<"POST /api/orgs/:orgId/billing/cancel">>("POST", `${t.base}/billing/cancel`, {
			token: t.admin.token,
			body: { atPeriodEnd: false },
		});
		expect(res.status, res.text).toBe(200);
		expect(res.json).toMatchObject({ subscriptionId: t.sub, status: "canceled", cancelAtPeriodEnd: false });
		expect(res.json.canceledAt).not.toBeNull();
		expect(stripe.calls.map((c) => `${c.method} ${c.url.pathname}`)).toEqual([`DELETE /v1/subscriptions/${t.sub}`]);
	});

	it("a cancel Stripe applied whose answer was lost: the retry is refused (already canceled), Stripe is asked, and the answer is 200 canceled", async () => {
		const t = await tenant();
		await seedSubscription(t);
		const stripe = fakeStripeBilling(t);
		stripe.state.loseCancelAnswer = true;
		const res = await call<Body<"POST /api/orgs/:orgId/billing/cancel">>("POST", `${t.base}/billing/cancel`, {
			token: t.admin.token,
			body: { atPeriodEnd: false },
		});
		expect(res.status, res.text).toBe(200);
		expect(res.json).toMatchObject({ subscriptionId: t.sub, status: "canceled" });
		expect(stripe.calls.map((c) => c.method)).toEqual(["DELETE", "DELETE", "GET"]);
	});

	it("403 without the permission, 409 without a live subscription or when Stripe refuses, 400 without atPeriodEnd", async () => {
		const t = await tenant();
		const stripe = fakeStripeBilling(t);
		expect((await call("POST", `${t.base}/billing/cancel`, { token: t.member.token, body: { atPeriodEnd: true } })).status).toBe(403);
		const none = await call<Problem>("POST", `${t.base}/billing/cancel`, { token: t.admin.token, body: { atPeriodEnd: true } });
		expect(none.status, none.text).toBe(409);
		expect(none.json.detail).toContain("no subscription to cancel");
		expect(stripe.calls).toHaveLength(0);
		expect((await call("POST", `${t.base}/billing/cancel`, { token: t.admin.token, body: {} })).status).toBe(400);

		await seedSubscription(t);
		stripe.state.refuse = true;
		const refused = await call<Problem>("POST", `${t.base}/billing/cancel`, { token: t.admin.token, body: { atPeriodEnd: false } });
		expect(refused.status, refused.text).toBe(409);
		expect(refused.json.detail).toContain("No such subscription");
	});
});

describe("GET /api/orgs/:orgId/billing/invoices", () => {
	it("lists the customer's invoices from Stripe, paginated with starting_after as the cursor", async () => {
		const t = await tenant();
		await seedSubscription(t);
		const stripe = fakeStripeBilling(t);
		stripe.state.invoices = [1, 2, 3].map((n) => invoice(t, n));
		type Page = Body<"GET /api/orgs/:orgId/billing/invoices">;
		const first = await call<Page>("GET", `${t.base}/billing/invoices?limit=2`, { token: t.biller.token });
		expect(first.status, first.text).toBe(200);
		expect(first.json.data.map((i) => i.id)).toEqual([invoice(t, 1).id, invoice(t, 2).id]);
		expect(first.json.data[0]).toMatchObject({
			number: "ABC-1001",
			status: "paid",
			currency: "usd",
			total: 4900,
			amountDue: 4900,
			amountPaid: 4900,
			subscriptionId: t.sub,
			hostedInvoiceUrl: expect.stringContaining("https://invoice.stripe.com/"),
		});
		expect(first.json.data[0]!.created).toBe((stripe.state.invoices[0]!.created as number) * 1000);
		expect(first.json.nextCursor).toBe(invoice(t, 2).id);
		expect(stripe.calls[0]!.url.searchParams.get("customer")).toBe(t.customer);
		expect(stripe.calls[0]!.url.searchParams.get("limit")).toBe("2");
		expect(stripe.calls[0]!.url.searchParams.has("starting_after")).toBe(false);

		const second = await call<Page>("GET", `${t.base}/billing/invoices?limit=2&cursor=${first.json.nextCursor}`, { token: t.admin.token });
		expect(second.status, second.text).toBe(200);
		expect(second.json.data.map((i) => i.id)).toEqual([invoice(t, 3).id]);
		expect(second.json.nextCursor).toBeNull();
		expect(stripe.calls[1]!.url.searchParams.get("starting_after")).toBe(invoice(t, 2).id);

		// A cursor Stripe does not know is a 400; one that is not an invoice id never reaches Stripe.
		expect((await call("GET", `${t.base}/billing/invoices?cursor=in_unknown`, { token: t.admin.token })).status).toBe(400);
		const calls = stripe.calls.length;
		expect((await call("GET", `${t.base}/billing/invoices?cursor=cus_x`, { token: t.admin.token })).status).toBe(400);
		expect(stripe.calls).toHaveLength(calls);
		expect((await call("GET", `${t.base}/billing/invoices`, { token: t.member.token })).status).toBe(403);
	});

	it("an organization never billed has no invoices (Stripe not called)", async () => {
		const t = await tenant();
		const stripe = fakeStripeBilling(t);
		const res = await call("GET", `${t.base}/billing/invoices`, { token: t.admin.token });
		expect(res.status, res.text).toBe(200);
		expect(res.json).toEqual({ data: [], nextCursor: null });
		expect(stripe.calls).toHaveLength(0);
	});
});

describe("checkout: org:billing:manage", () => {
	it("a billing manager who is not an admin may start a checkout; a member may not", async () => {
		const t = await tenant();
		stubNetwork(vi, {
			routes: {
				"https://api.stripe.com/v1/checkout/sessions": () =>
					Response.json({ id: "cs_test_1", object: "checkout.session", mode: "subscription", status: "open", url: "https://checkout.stripe.com/c/pay/cs_test_1" }),
			},
		});
		const body = { plan: "pro", successUrl: "https://app.example/ok", cancelUrl: "https://app.example/cancel" };
		expect((await call("POST", `${t.base}/billing/checkout`, { token: t.biller.token, body })).status).toBe(201);
		expect((await call("POST", `${t.base}/billing/checkout`, { token: t.member.token, body })).status).toBe(403);
	});
});

describe("subscription lifecycle from Stripe events", () => {
	let sent: TenantEvent[];
	beforeEach(() => {
		sent = captureTenantEvents(vi);
	});
	/** The cron's plan.changed audit entries for the organization (the webhook's own carry their event's reason). */
	const planChanges = (orgId: string) =>
		sent.filter(
			(m): m is AuditMessage =>
				m.kind === "audit" &&
				m.organizationId === orgId &&
				m.action === "plan.changed" &&
				(m.after as { reason?: string } | null)?.reason === "subscription_lapsed",
		);

	it("each subscription event's plan.changed names the plan before it and why: subscription_created, _updated, _deleted", async () => {
		const t = await tenant();
		const now = Date.now();
		const base = { id: t.sub, customer: t.customer, orgId: t.orgId, periodEnd: sec(now + 10 * DAY) };
		await deliver([stripeMessage("customer.subscription.created", now - 2 * DAY, subscriptionObject(base))]);
		await deliver([stripeMessage("customer.subscription.updated", now - DAY, subscriptionObject({ ...base, cancelAtPeriodEnd: true }))]);
		await deliver([stripeMessage("customer.subscription.deleted", now, subscriptionObject({ ...base, status: "canceled" }))]);
		const events = sent.filter((m) => m.kind === "webhook.event" && m.organizationId === t.orgId && m.type === "plan.changed");
		expect(events.map((m) => (m as { data: Record<string, unknown> }).data)).toEqual([
			expect.objectContaining({ previousPlan: "free", plan: "pro", reason: "subscription_created", subscriptionStatus: "active" }),
			expect.objectContaining({ previousPlan: "pro", plan: "pro", reason: "subscription_updated", cancelAtPeriodEnd: true }),
			expect.objectContaining({ previousPlan: "pro", plan: "free", reason: "subscription_deleted", subscriptionStatus: "canceled" }),
		]);
	});

	it("cancel_at_period_end keeps the plan until the period ends; the deletion at period end moves it to free", async () => {
		const t = await tenant();
		const now = Date.now();
		const periodEnd = sec(now + 10 * DAY);
		const base = { id: t.sub, customer: t.customer, orgId: t.orgId, periodEnd };
		await deliver([stripeMessage("customer.subscription.created", now - 2 * DAY, subscriptionObject(base))]);
		expect(await t.billing()).toMatchObject({ plan: "pro", status: "active", cancelAtPeriodEnd: false });
		await deliver([stripeMessage("customer.subscription.updated", now - DAY, subscriptionObject({ ...base, cancelAtPeriodEnd: true }))]);
		expect(await t.billing()).toMatchObject({ plan: "pro", status: "active", cancelAtPeriodEnd: true, periodEnd: periodEnd * 1000 });
		await deliver([stripeMessage("customer.subscription.deleted", now, subscriptionObject({ ...base, status: "canceled" }))]);
		expect(await t.billing()).toMatchObject({ plan: "free", status: "canceled" });
	});

	it("a trial grants the plan until it ends: trialing -> active keeps it; a trial that ends paused (no payment method) is free", async () => {
		const now = Date.now();
		const trialEnd = sec(now + 3 * DAY);
		const a = await tenant();
		const trial = { id: a.sub, customer: a.customer, orgId: a.orgId, periodEnd: trialEnd, status: "trialing", trialEnd };
		await deliver([stripeMessage("customer.subscription.created", now - 5 * DAY, subscriptionObject(trial))]);
		expect(await a.billing()).toMatchObject({ plan: "pro", status: "trialing", trialEnd: trialEnd * 1000, periodEnd: trialEnd * 1000 });
		const renewed = sec(now + 33 * DAY);
		await deliver([stripeMessage("customer.subscription.updated", now, subscriptionObject({ ...trial, status: "active", periodEnd: renewed }))]);
		expect(await a.billing()).toMatchObject({ plan: "pro", status: "active", periodEnd: renewed * 1000 });

		const b = await tenant();
		const trialB = { ...trial, id: b.sub, customer: b.customer, orgId: b.orgId };
		await deliver([stripeMessage("customer.subscription.created", now - 5 * DAY, subscriptionObject(trialB))]);
		expect(await b.plan()).toBe("pro");
		await deliver([stripeMessage("customer.subscription.updated", now, subscriptionObject({ ...trialB, status: "paused" }))]);
		expect(await b.billing()).toMatchObject({ plan: "free", status: "paused" });
	});

	it("past_due keeps the plan for the 7-day grace period, then the cron moves it to free; a paid invoice restores it", async () => {
		const t = await tenant();
		const now = Date.now();
		const base = { id: t.sub, customer: t.customer, orgId: t.orgId, periodEnd: sec(now + 25 * DAY) };
		await deliver([stripeMessage("customer.subscription.created", now - 5 * DAY, subscriptionObject(base))]);
		const failedAt = sec(now - DAY) * 1000;
		await deliver([
			stripeMessage("invoice.payment_failed", failedAt, { id: "in_f", object: "invoice", customer: t.customer, subscription: t.sub }),
		]);
		expect(await t.billing()).toMatchObject({ plan: "pro", status: "past_due", graceUntil: failedAt + PAST_DUE_GRACE_MS });
		// A second failure (Stripe's retry) does not restart the grace period.
		await deliver([
			stripeMessage("invoice.payment_failed", now, { id: "in_f", object: "invoice", customer: t.customer, subscription: t.sub }),
		]);
		expect((await t.billing()).graceUntil).toBe(failedAt + PAST_DUE_GRACE_MS);

		await runScheduled(env, failedAt + PAST_DUE_GRACE_MS - 60_000);
		expect(await t.plan()).toBe("pro");
		await runScheduled(env, failedAt + PAST_DUE_GRACE_MS + 60_000);
		expect(await t.billing()).toMatchObject({ plan: "free", status: "past_due" });
		expect(planChanges(t.orgId).map((m) => m.after)).toEqual([
			{ organizationId: t.orgId, plan: "free", previousPlan: "pro", reason: "subscription_lapsed" },
		]);
		expect(sent.some((m) => m.kind === "webhook.event" && m.organizationId === t.orgId && m.type === "plan.changed")).toBe(true);

		await deliver([
			stripeMessage("invoice.paid", now + 1000, { id: "in_f", object: "invoice", customer: t.customer, subscription: t.sub }),
		]);
		expect(await t.billing()).toMatchObject({ plan: "pro", status: "active", graceUntil: null });
		// The paid invoice restored the plan: announced like the cron's lapse (audit entry and outgoing event), once.
		const restored = { organizationId: t.orgId, plan: "pro", previousPlan: "free", reason: "invoice_paid" };
		const ours = sent.filter((m) => m.organizationId === t.orgId);
		expect(ours.filter((m) => m.kind === "audit" && (m.after as { reason?: string } | null)?.reason === "invoice_paid")).toEqual([
			expect.objectContaining({ action: "plan.changed", before: { plan: "free" }, after: restored }),
		]);
		expect(ours.filter((m) => m.kind === "webhook.event" && (m.data as { reason?: string }).reason === "invoice_paid")).toEqual([
			expect.objectContaining({ type: "plan.changed", data: restored }),
		]);
		// The next paid invoice leaves the plan as it is: nothing more is announced.
		await deliver([
			stripeMessage("invoice.paid", now + 2000, { id: "in_g", object: "invoice", customer: t.customer, subscription: t.sub }),
		]);
		expect(sent.filter((m) => m.organizationId === t.orgId && m.kind === "webhook.event" && m.type === "plan.changed")).toHaveLength(
			ours.filter((m) => m.kind === "webhook.event" && m.type === "plan.changed").length,
		);
	});

	it("a stale invoice event that finds a lapsed plan announces the lapse, not a payment", async () => {
		const t = await tenant();
		const now = Date.now();
		const base = { id: t.sub, customer: t.customer, orgId: t.orgId, periodEnd: sec(now + 25 * DAY) };
		await deliver([stripeMessage("customer.subscription.created", now - DAY, subscriptionObject(base))]);
		expect(await t.plan()).toBe("pro");
		// Its period ran out (its renewal lost) and the cron has not run yet: D1 still says pro.
		await env.DB.prepare("UPDATE subscriptions SET current_period_end = ? WHERE subscription_id = ?").bind(now - 3 * DAY, t.sub).run();
		// An invoice.paid older than what is stored changes no subscription; applying the plan moves it to free.
		await deliver([
			stripeMessage("invoice.paid", now - 2 * DAY, { id: "in_old", object: "invoice", customer: t.customer, subscription: t.sub }),
		]);
		expect(await t.plan()).toBe("free");
		// The invoice's own announcement (or the lapse it found), not the subscription event's.
		const announced = sent.filter(
			(m) =>
				m.organizationId === t.orgId &&
				m.kind === "webhook.event" &&
				["subscription_lapsed", "invoice_paid", "invoice_payment_failed"].includes((m.data as { reason?: string }).reason ?? ""),
		);
		expect(announced).toEqual([
			expect.objectContaining({ data: { organizationId: t.orgId, plan: "free", previousPlan: "pro", reason: "subscription_lapsed" } }),
		]);
	});

	it("a past_due event older than the grace period grants nothing when it is applied", async () => {
		const t = await tenant();
		const now = Date.now();
		const base = { id: t.sub, customer: t.customer, orgId: t.orgId, periodEnd: sec(now + 25 * DAY) };
		await deliver([stripeMessage("customer.subscription.created", now - 20 * DAY, subscriptionObject(base))]);
		await deliver([stripeMessage("customer.subscription.updated", now - 8 * DAY, subscriptionObject({ ...base, status: "past_due" }))]);
		expect(await t.billing()).toMatchObject({ plan: "free", status: "past_due" });
	});

	it("period end: a subscription whose period ended without a renewal event falls back to free (the cron checks); a late renewal restores it", async () => {
		const t = await tenant();
		const now = Date.now();
		const periodEndMs = sec(now + 60 * 60 * 1000) * 1000;
		const base = { id: t.sub, customer: t.customer, orgId: t.orgId, periodEnd: periodEndMs / 1000 };
		await deliver([stripeMessage("customer.subscription.created", now - DAY, subscriptionObject({ ...base, cancelAtPeriodEnd: true }))]);
		expect(await t.plan()).toBe("pro");
		// Before the period (plus the leeway) ends nothing changes.
		await runScheduled(env, now);
		await runScheduled(env, periodEndMs + PERIOD_END_LEEWAY_MS - 60_000);
		expect(await t.plan()).toBe("pro");
		expect(planChanges(t.orgId)).toEqual([]);
		// The customer.subscription.deleted never arrives: the cron ends the plan.
		await runScheduled(env, periodEndMs + PERIOD_END_LEEWAY_MS + 60_000);
		expect(await t.plan()).toBe("free");
		expect(planChanges(t.orgId)).toHaveLength(1);
		// Another run changes nothing more.
		await runScheduled(env, periodEndMs + PERIOD_END_LEEWAY_MS + 120_000);
		expect(planChanges(t.orgId)).toHaveLength(1);

		// A renewal that arrives late moves the period and the plan back.
		await deliver([stripeMessage("customer.subscription.updated", now, subscriptionObject({ ...base, periodEnd: sec(now + 30 * DAY) }))]);
		expect(await t.plan()).toBe("pro");
	});

	it("a paid renewal invoice moves the period end even when its subscription update was lost", async () => {
		const t = await tenant();
		const now = Date.now();
		const periodEndMs = sec(now + 60 * 60 * 1000) * 1000;
		const base = { id: t.sub, customer: t.customer, orgId: t.orgId, periodEnd: periodEndMs / 1000 };
		await deliver([stripeMessage("customer.subscription.created", now - DAY, subscriptionObject(base))]);
		const nextEnd = sec(now + 31 * DAY);
		await deliver([
			stripeMessage("invoice.paid", now, {
				id: "in_r",
				object: "invoice",
				customer: t.customer,
				parent: { type: "subscription_details", subscription_details: { subscription: t.sub } },
				lines: { object: "list", data: [{ id: "il_1", object: "line_item", period: { start: periodEndMs / 1000, end: nextEnd } }] },
			}),
		]);
		expect((await t.billing()).periodEnd).toBe(nextEnd * 1000);
		await runScheduled(env, periodEndMs + PERIOD_END_LEEWAY_MS + 60_000);
		expect(await t.plan()).toBe("pro");
	});

	it("an organization without subscriptions keeps the plan an operator gave it", async () => {
		const t = await tenant();
		await env.DB.prepare("UPDATE organizations SET plan = 'enterprise' WHERE id = ?").bind(t.orgId).run();
		await runScheduled(env, Date.now() + 400 * DAY);
		expect(await t.plan()).toBe("enterprise");
	});
});
