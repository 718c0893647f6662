import { eq, sql } from "drizzle-orm";
import { runBatch } from "../db/batch";
import type { Database } from "../db/client";
import { organizations, subscriptions } from "../db/schema";
import type { Config, Env } from "../env";
import type { Logger } from "../lib/logger";
import type { RequestMeta } from "../lib/request-meta";
import { endBillingWhenDeleted } from "./billing-endings";
import { publishChange } from "./events-bus";
import { ApiError } from "../errors";
import { grantsPlan, isLiveSubscription, mayStillBill, PAST_DUE_GRACE_MS, PLANS, type PlanId, type PlanLimits, planOf, planRank } from "./plans";
import {
	cancelStripeSubscription,
	createCheckoutSession,
	createPortalSession,
	type InvoiceView,
	listStripeInvoices,
	settleCheckoutSession,
	type StripeSubscriptionState,
	stripeSubscriptionStatus,
} from "./stripe";
import { getUser } from "./users";

/** What the billing and payments services need of a request, as plain values. */
export interface BillingDeps {
	db: Database;
	env: Env;
	config: Config;
	meta: RequestMeta;
	logger: Logger;
}

type Subscription = typeof subscriptions.$inferSelect;

async function subscriptionsOf(db: Database, organizationId: string): Promise<Subscription[]> {
	return db.select().from(subscriptions).where(eq(subscriptions.organizationId, organizationId));
}

/**
 * The subscription that stands for the organization's billing: the live one with the best plan (the
 * one that grants organizations.plan), else the most recently changed one.
 */
function currentSubscription(subs: Subscription[]): Subscription | undefined {
	return subs.toSorted(
		(a, b) =>
			Number(isLiveSubscription(b.status)) - Number(isLiveSubscription(a.status)) ||
			(isLiveSubscription(a.status) ? planRank(b.plan) - planRank(a.plan) : 0) ||
			b.sourceUpdatedAt - a.sourceUpdatedAt ||
			b.updatedAt - a.updatedAt,
	)[0];
}

/** Plan, subscription state and entitlements of an organization (limits as resolved, with its overrides). */
export async function billingState(db: Database, organization: { id: string; plan: string }, limits: PlanLimits) {
	const sub = currentSubscription(await subscriptionsOf(db, organization.id));
	const plan = planOf(organization.plan);
	return {
		organizationId: organization.id,
		plan,
		status: sub?.status ?? "none",
		periodEnd: sub?.currentPeriodEnd ?? null,
		provider: sub?.provider ?? null,
		cancelAtPeriodEnd: sub?.cancelAtPeriodEnd ?? false,
		trialEnd: sub?.trialEnd ?? null,
		graceUntil: sub?.status === "past_due" && sub.pastDueSince !== null ? sub.pastDueSince + PAST_DUE_GRACE_MS : null,
		entitlements: { features: PLANS[plan].features, limits },
	};
}

/** The organization's Stripe customer (of its current subscription, else any); 409 when it has none yet. */
async function stripeCustomerOf(db: Database, organizationId: string): Promise<string> {
	const customerId = currentSubscription((await subscriptionsOf(db, organizationId)).filter((s) => s.customerId))?.customerId;
	if (!customerId) {
		throw new ApiError(
			"CONFLICT",
			`the organization has no Stripe customer yet: subscribe first (POST /api/orgs/${organizationId}/billing/checkout)`,
		);
	}
	return customerId;
}

/**
 * The Stripe customer an organization's API calls are billed to: the customer of the live subscription
 * that grants its plan, when that plan bills usage (meteredBilling); null when nothing is to be billed.
 */
export async function meteredCustomer(db: Database, organizationId: string): Promise<string | null> {
	const [org] = await db.select({ plan: organizations.plan }).from(organizations).where(eq(organizations.id, organizationId));
	if (!org || !PLANS[planOf(org.plan)].meteredBilling) return null;
	const subs = await subscriptionsOf(db, organizationId);
	return currentSubscription(subs.filter((s) => isLiveSubscription(s.status) && s.customerId))?.customerId ?? null;
}

/** A Stripe Billing Portal session for the organization's customer (change plan, payment method, cancel). */
export async function openBillingPortal(
	deps: BillingDeps,
	organizationId: string,
	returnUrl: string | undefined,
): Promise<{ id: string; url: string }> {
	const customerId = await stripeCustomerOf(deps.db, organizationId);
	const session = await createPortalSession(deps.config, { customerId, returnUrl });
	await publishChange(deps.env, deps.meta, deps.logger, {
		organizationId,
		action: "billing.portal_opened",
		targetType: "customer",
		targetId: customerId,
	});
	return session;
}

/**
 * Cancels the organization's subscription (the live one that grants its plan) at Stripe: at the end
 * of the period, or now. Answers with what Stripe returned; the webhook then updates D1 and the plan.
 * 409 when there is no live subscription.
 */
export async function cancelSubscription(
	deps: BillingDeps,
	organizationId: string,
	atPeriodEnd: boolean,
): Promise<StripeSubscriptionState & { plan: PlanId }> {
	// The one that grants the plan, else one Stripe may still bill (unpaid, paused, incomplete).
	const live = currentSubscription((await subscriptionsOf(deps.db, organizationId)).filter((s) => mayStillBill(s.status)));
	if (!live) throw new ApiError("CONFLICT", "the organization has no subscription to cancel");
	// Now: with a last invoice for the usage reported this period (no proration credit), as offboarding does.
	const state = await cancelStripeSubscription(deps.config, live.subscriptionId, atPeriodEnd, { final: !atPeriodEnd });
	await publishChange(deps.env, deps.meta, deps.logger, {
		organizationId,
		action: atPeriodEnd ? "billing.cancel_scheduled" : "billing.canceled",
		targetType: "subscription",
		targetId: live.subscriptionId,
		before: { status: live.status, cancelAtPeriodEnd: live.cancelAtPeriodEnd },
		after: { status: state.status, cancelAtPeriodEnd: state.cancelAtPeriodEnd, cancelAt: state.cancelAt },
	});
	return { ...state, plan: planOf(live.plan) };
}

/** The organization's invoices from Stripe, newest first; an organization never billed has none. */
export async function listInvoices(
	deps: BillingDeps,
	organizationId: string,
	q: { limit: number; cursor?: string | undefined },
): Promise<{ data: InvoiceView[]; nextCursor: string | null }> {
	const customerId = currentSubscription((await subscriptionsOf(deps.db, organizationId)).filter((s) => s.customerId))?.customerId;
	if (!customerId) return { data: [], nextCursor: null };
	return listStripeInvoices(deps.config, { customerId, limit: q.limit, startingAfter: q.cursor });
}

/** Earlier sessions one Checkout settles at most (each one or two Stripe calls). */
const SETTLE_AT_ONCE = 20;

/**
 * One open Checkout per organization: records the new session and expires every older one at Stripe, so
 * two Checkouts opened side by side (or a stale one) cannot both be paid: two subscriptions, billed twice.
 * The insert's `seq` orders concurrent calls: each settles only what was opened before it, so the last one
 * stays open. An older session that was paid for a subscription Stripe may still bill (its webhook not yet
 * applied) makes this one expire too: 409.
 */
async function settleEarlierCheckouts(deps: BillingDeps, organizationId: string, sessionId: string): Promise<void> {
	const d1 = deps.db.$client;
	const now = Date.now();
	const [, , earlier] = await runBatch<{ sessionId: string }>(d1, [
		sql`INSERT INTO checkout_sessions (session_id, organization_id, created_at) VALUES (${sessionId}, ${organizationId}, ${now})`,
		// Deleted since its access was checked: the cron ending its billing expires this session too.
		endBillingWhenDeleted(organizationId, now),
		sql`SELECT session_id AS sessionId FROM checkout_sessions WHERE organization_id = ${organizationId}
			AND seq < (SELECT seq FROM checkout_sessions WHERE session_id = ${sessionId}) ORDER BY seq LIMIT ${SETTLE_AT_ONCE + 1}`,
	]);
	const settled: string[] = [];
	const rows = earlier?.results ?? [];
	let paid = false;
	for (const { sessionId: id } of rows.slice(0, SETTLE_AT_ONCE)) {
		if ((await settleCheckoutSession(deps.config, id)).state === "live") paid = true;
		else settled.push(id);
	}
	// More were left (only after many calls Stripe failed): this one waits until they are settled.
	const more = rows.length > SETTLE_AT_ONCE;
	if (paid || more) {
		await settleCheckoutSession(deps.config, sessionId);
		settled.push(sessionId);
	}
	if (settled.length > 0) {
		await d1
			.prepare(`DELETE FROM checkout_sessions WHERE session_id IN (${settled.map(() => "?").join(", ")})`)
			.bind(...settled)
			.run();
	}
	if (paid) {
		throw new ApiError(
			"CONFLICT",
			`an earlier Checkout of the organization was paid for a subscription Stripe bills (GET /api/orgs/${organizationId}/billing ` +
				"shows it once Stripe's webhook is processed): change, pay or cancel it in the billing portal instead of starting a second one",
		);
	}
	if (more) throw new ApiError("UPSTREAM_UNAVAILABLE", "earlier Checkout Sessions are still being expired at Stripe; try again");
}

/** A Stripe Checkout Session for a paid plan, reusing the organization's Stripe customer when it has one. */
export async function startCheckout(
	deps: BillingDeps,
	organizationId: string,
	userId: string,
	input: { plan: Exclude<PlanId, "free">; successUrl: string; cancelUrl: string },
): Promise<{ id: string; url: string | null }> {
	const subs = await subscriptionsOf(deps.db, organizationId);
	// One subscription per organization: a second Checkout would bill twice. Plan changes and
	// cancellation of the one it has go through the billing portal.
	const now = Date.now();
	const refuse = (sub: Subscription, status = sub.status) =>
		new ApiError(
			"CONFLICT",
			`the organization already has a ${sub.plan} subscription Stripe bills (${status}); change, pay or cancel it in the ` +
				`billing portal (POST /api/orgs/${organizationId}/billing/portal) instead of starting a second one`,
		);
	const granting = currentSubscription(subs.filter((s) => grantsPlan(s, now)));
	if (granting) throw refuse(granting);
	// Not ended by its last webhook, but granting no plan: past its period or grace (Stripe's last word, a deletion
	// at period end, may have been lost), or unpaid, paused, incomplete. Stripe is asked: one it may still bill blocks.
	for (const s of subs.filter((sub) => mayStillBill(sub.status))) {
		const status = await stripeSubscriptionStatus(deps.config, s.subscriptionId);
		if (mayStillBill(status)) throw refuse(s, status);
	}
	const customerId = currentSubscription(subs.filter((s) => s.customerId))?.customerId;
	const user = await getUser(deps.db, userId);
	const session = await createCheckoutSession(deps.config, {
		organizationId,
		plan: input.plan,
		successUrl: input.successUrl,
		cancelUrl: input.cancelUrl,
		customerId,
		email: user?.email,
	});
	await settleEarlierCheckouts(deps, organizationId, session.id);
	await publishChange(deps.env, deps.meta, deps.logger, {
		organizationId,
		action: "billing.checkout_started",
		targetType: "checkout_session",
		targetId: session.id,
		after: { plan: input.plan },
	});
	return session;
}
