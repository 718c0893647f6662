import { type SQL, sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { type Data, num as n, obj, str as s } from "../lib/payload";
import { endBillingWhenDeleted } from "./billing-endings";
import type { SyncPlan } from "./clerk-sync";
import { systemAudit, tenantEvent } from "./events-bus";
import { outboxInsert } from "./outbox";
import { findOrderByRazorpayId, recordPayment, transitionOrder } from "./payment-orders";
import {
	bestPlan,
	FINAL_STATUSES_SQL as FINAL,
	grantsPlan,
	LIVE_STATUSES_SQL as LIVE,
	PAST_DUE_GRACE_MS,
	PERIOD_END_LEEWAY_MS,
	PLAN_IDS,
	planOf,
	planRank,
} from "./plans";

function emptyPlan(entityId: string | null, organizationId: string | null): SyncPlan {
	return { statements: [], organizationId, entityId, staleCheck: null, invalidate: {}, ignored: false };
}

/**
 * Razorpay webhook events → payment tables. payment.captured and order.paid mark the order PAID and
 * record the payment as captured; payment.failed records the failed attempt and marks a still-CREATED
 * order FAILED. A PAID order is never downgraded and a captured payment never becomes failed, so
 * duplicates and any arrival order converge to the same state.
 *
 * A capture is cross-checked against the stored order: its amount (an exact, safe integer) and its
 * currency must be the order's. A capture that differs, or does not say, changes nothing (the order
 * stays as it was, no payment is recorded) and is recorded as a security event instead
 * (audit action security.payment_mismatch, with what was expected and what arrived).
 *
 * refund.processed: the refund is recorded in the organization's audit log (payment.refunded: the refund,
 * its payment and order, the amount, whether the payment is now fully refunded), once per refund. The
 * order keeps its status (PAID is final).
 */
export async function planRazorpayEvent(db: Database, body: Data, now: number, eventId = ""): Promise<SyncPlan> {
	const payload = obj(body.payload);
	const payment = obj(obj(payload.payment).entity);
	const order = obj(obj(payload.order).entity);
	const razorpayOrderId = s(payment.order_id) ?? s(order.id);
	const paymentId = s(payment.id);
	const event = s(body.event) ?? "";
	const found = razorpayOrderId ? await findOrderByRazorpayId(db, razorpayOrderId) : undefined;
	const plan = emptyPlan(paymentId ?? razorpayOrderId, found?.organizationId ?? null);
	const refund = obj(obj(payload.refund).entity);
	if (event === "refund.processed" && found && s(refund.id)) {
		plan.entityId = s(refund.id);
		plan.events = [
			systemAudit({
				id: `aud_refund_${s(refund.id)}`,
				organizationId: found.organizationId,
				action: "payment.refunded",
				targetType: "payment_order",
				targetId: found.id,
				after: {
					refundId: s(refund.id),
					paymentId: paymentId ?? s(refund.payment_id),
					razorpayOrderId,
					amount: n(refund.amount),
					currency: s(refund.currency),
					amountRefunded: n(payment.amount_refunded),
					fullyRefunded: s(payment.refund_status) === "full",
				},
			}),
		];
		return plan;
	}
	if (!found || !["payment.captured", "payment.failed", "order.paid"].includes(event)) {
		plan.ignored = true;
		return plan;
	}
	const status = event === "payment.failed" ? "failed" : "captured";
	// order.paid carries the order (amount_paid) and usually the payment; the payment's figures win.
	const paid = Object.keys(payment).length > 0 ? payment : { amount: order.amount_paid, currency: order.currency };
	const rawAmount = n(paid.amount);
	const amount = rawAmount !== null && Number.isSafeInteger(rawAmount) ? rawAmount : null;
	const currency = s(paid.currency);
	const { organizationId } = found;
	if (status === "captured" && (amount !== found.amount || currency?.toUpperCase() !== found.currency.toUpperCase())) {
		plan.events = [
			systemAudit({
				id: `aud_${eventId}`,
				organizationId,
				action: "security.payment_mismatch",
				targetType: "payment_order",
				targetId: found.id,
				before: { status: found.status, amount: found.amount, currency: found.currency },
				after: { event, razorpayOrderId, paymentId, amount: rawAmount, currency },
			}),
		];
		return plan;
	}
	if (paymentId) {
		plan.statements.push(
			recordPayment({ organizationId, orderId: found.id, paymentId, amount, currency, source: "webhook", status, now }),
		);
	}
	plan.statements.push(transitionOrder(found.id, status === "captured" ? "PAID" : "FAILED", now));
	plan.events = [
		systemAudit({
			// One entry per payment and outcome: payment.captured and order.paid both report the same capture.
			id: paymentId ? `aud_${status}_${paymentId}` : `aud_${eventId}`,
			organizationId,
			action: `payment.${status}`,
			targetType: "payment_order",
			targetId: found.id,
			after: { razorpayOrderId, paymentId, amount, currency },
		}),
	];
	return plan;
}

/** free < pro < enterprise, as SQL over subscriptions.plan (constants from PLAN_IDS, no user input). */
const PLAN_RANK = sql.raw(`CASE plan ${PLAN_IDS.map((p) => `WHEN '${p}' THEN ${planRank(p)}`).join(" ")} ELSE 0 END`);

/**
 * SQL over a subscriptions row: it grants its plan at `now` (the twin of plans.ts grantsPlan): a live
 * status, the period (plus the leeway) not over, and a past_due one within its grace period.
 */
export function grantsPlanAt(now: number): SQL {
	return sql`(status IN (${LIVE})
		AND (current_period_end IS NULL OR current_period_end + ${PERIOD_END_LEEWAY_MS} > ${now})
		AND (status <> 'past_due' OR past_due_since IS NULL OR past_due_since + ${PAST_DUE_GRACE_MS} > ${now}))`;
}

/** The plan an organization's subscriptions grant at `now`, as SQL (free if none does). */
export function grantedPlanSql(orgId: SQL | string, now: number): SQL {
	return sql`coalesce((SELECT plan FROM subscriptions WHERE organization_id = ${orgId} AND ${grantsPlanAt(now)}
		ORDER BY ${PLAN_RANK} DESC LIMIT 1), 'free')`;
}

/**
 * organizations.plan := the best plan among the subscriptions that grant one at `now` (free if none).
 * Organizations without any subscription keep their plan (set by an operator).
 */
export function applyPlan(orgId: string, now: number): SQL {
	return sql`UPDATE organizations SET plan = ${grantedPlanSql(orgId, now)}, updated_at = ${now}
		WHERE id = ${orgId} AND EXISTS (SELECT 1 FROM subscriptions WHERE organization_id = ${orgId})`;
}

/**
 * plan.changed (audit entry and outgoing event, as the lapsed-plans cron writes them) for a batch about to
 * run applyPlan: written only when the plan it will set differs from the stored one, with both filled in by
 * the batch. Place it after the statements that change the subscriptions and before applyPlan.
 */
function planChangedOutbox(orgId: string, now: number, reason: string, eventId: string, applied: SQL): SQL[] {
	const stored = sql`(SELECT plan FROM organizations WHERE id = ${orgId})`;
	const granted = grantedPlanSql(orgId, now);
	const when = sql`${stored} <> ${granted} AND EXISTS (SELECT 1 FROM subscriptions WHERE organization_id = ${orgId})`;
	// `applied`: the event changed a subscription. A stale or replayed one changes none, yet applyPlan may still move
	// a plan whose period ran out before the cron got to it: that is announced as the cron would have.
	const why = sql`CASE WHEN ${applied} THEN ${reason} ELSE 'subscription_lapsed' END`;
	const data = { organizationId: orgId, plan: "", previousPlan: "", reason };
	return [
		outboxInsert(
			systemAudit({ id: `aud_plan_${eventId}`, organizationId: orgId, action: "plan.changed", targetType: "organization", targetId: orgId, after: data }),
			{
				set: { "$.after.plan": granted, "$.after.previousPlan": stored, "$.after.reason": why, "$.before": sql`json_object('plan', ${stored})` },
				when,
			},
		),
		outboxInsert(tenantEvent(orgId, "plan.changed", data, `evt_plan_${eventId}`), {
			set: { "$.data.plan": granted, "$.data.previousPlan": stored, "$.data.reason": why },
			when,
		}),
	];
}

/** Stripe timestamps are seconds; stored as ms. */
/**
 * How far a subscription has come, for two Stripe events of one second (Stripe's `created` has seconds and
 * its deliveries are unordered): incomplete, then live (trialing, active, past_due, unpaid, paused), then
 * ended. Of two events stamped alike, the one that arrives last applies only if it is not behind what is
 * stored: a late customer.subscription.created (incomplete) never undoes the update that made it active.
 */
const statusRank = (status: SQL): SQL =>
	sql`(CASE ${status} WHEN 'incomplete' THEN 0 WHEN 'canceled' THEN 2 WHEN 'incomplete_expired' THEN 2 ELSE 1 END)`;

const msOf = (v: number | null) => (v === null ? null : v * 1000);

/**
 * Stripe events → subscriptions (one row per Stripe subscription) → organizations.plan. The plan is the
 * best plan (free < pro < enterprise) among the organization's live (active, trialing, past_due)
 * subscriptions, so a second subscription, its renewal or its end never takes away a plan that another
 * live subscription pays for. Per subscription, events are ordered by their `created` time: an older
 * event never overwrites newer state, and a canceled (or incomplete_expired) subscription is final:
 * no later or equal-timestamp event revives it.
 */
export async function planStripeEvent(db: Database, event: Data, now: number, eventId = ""): Promise<SyncPlan> {
	const type = s(event.type) ?? "";
	const object = obj(obj(event.data).object);
	const ts = (n(event.created) ?? Math.floor(now / 1000)) * 1000;
	const customer = s(object.customer);
	const metadata = obj(object.metadata);

	async function orgFor(): Promise<string | null> {
		const fromMeta = s(metadata.organizationId) ?? s(object.client_reference_id);
		if (fromMeta) return fromMeta;
		if (!customer) return null;
		const row = await db.$client
			.prepare("SELECT organization_id AS organizationId FROM subscriptions WHERE customer_id = ? LIMIT 1")
			.bind(customer)
			.first<{ organizationId: string }>();
		return row?.organizationId ?? null;
	}

	const orgId = await orgFor();
	const plan = emptyPlan(s(object.id), orgId);
	if (!orgId) {
		plan.ignored = true;
		return plan;
	}
	plan.invalidate = { orgId };

	switch (type) {
		case "checkout.session.completed": {
			// Maps the customer (and the subscription to come) to the organization; grants nothing yet.
			const subscriptionId = s(object.subscription);
			if (!subscriptionId) {
				plan.ignored = true;
				return plan;
			}
			plan.statements.push(sql`
				INSERT INTO subscriptions (organization_id, provider, customer_id, subscription_id, plan, status, source_updated_at, updated_at)
				VALUES (${orgId}, 'stripe', ${customer}, ${subscriptionId}, ${planOf(s(metadata.plan))}, 'incomplete', 0, ${now})
				ON CONFLICT (subscription_id) DO UPDATE SET customer_id = coalesce(subscriptions.customer_id, excluded.customer_id),
					updated_at = excluded.updated_at
				WHERE subscriptions.organization_id = excluded.organization_id`);
			// Paid for an organization deleted meanwhile: its billing is ended again (billing-endings.ts).
			plan.statements.push(endBillingWhenDeleted(orgId, now));
			return plan;
		}
		case "customer.subscription.created":
		case "customer.subscription.updated":
		case "customer.subscription.deleted": {
			const subscriptionId = s(object.id);
			if (!subscriptionId) {
				plan.ignored = true;
				return plan;
			}
			const items = (obj(object.items).data as Data[] | undefined) ?? [];
			// The plan is the flat (licensed) item's price when that names one (a plan changed in the billing portal
			// changes the price, not the subscription's metadata), else the metadata Checkout wrote (its prices are
			// inline, without metadata or lookup key). A metered item (usage billing) names no plan.
			const flat = items.find((i) => obj(obj(i.price).recurring).usage_type !== "metered") ?? items[0];
			const price = obj(flat?.price);
			const known = (v: string | null) => (v !== null && (PLAN_IDS as readonly string[]).includes(v) ? v : null);
			const fromPrice = known(s(obj(price.metadata).plan)) ?? known(s(price.lookup_key));
			const planId = planOf(fromPrice ?? s(metadata.plan));
			// A price of the operator's (the billing portal's) that says something else: the plan may not follow it.
			if (!fromPrice && (s(obj(price.metadata).plan) ?? s(price.lookup_key)) !== null) {
				plan.warning = "the subscription's price names no plan (metadata.plan or lookup_key free, pro or enterprise): its metadata.plan is used";
			}
			const status = type === "customer.subscription.deleted" ? "canceled" : (s(object.status) ?? "incomplete");
			// API versions before 2025-03-31 (basil) carry the period on the subscription, later ones on its items.
			const periodEnd = msOf(n(object.current_period_end) ?? n(flat?.current_period_end));
			const cancelAtPeriodEnd = object.cancel_at_period_end === true ? 1 : 0;
			const trialEnd = msOf(n(object.trial_end));
			plan.statements.push(
				sql`
				INSERT INTO subscriptions (organization_id, provider, customer_id, subscription_id, plan, status, current_period_end,
					cancel_at_period_end, trial_end, past_due_since, source_updated_at, updated_at)
				VALUES (${orgId}, 'stripe', ${customer}, ${subscriptionId}, ${planId}, ${status}, ${periodEnd}, ${cancelAtPeriodEnd},
					${trialEnd}, ${status === "past_due" ? ts : null}, ${ts}, ${now})
				ON CONFLICT (subscription_id) DO UPDATE SET customer_id = coalesce(excluded.customer_id, subscriptions.customer_id),
					plan = excluded.plan, status = excluded.status, current_period_end = excluded.current_period_end,
					cancel_at_period_end = excluded.cancel_at_period_end, trial_end = excluded.trial_end,
					past_due_since = CASE WHEN excluded.status <> 'past_due' THEN NULL
						WHEN subscriptions.status = 'past_due' THEN coalesce(subscriptions.past_due_since, excluded.past_due_since)
						ELSE excluded.past_due_since END,
					source_updated_at = excluded.source_updated_at, updated_at = excluded.updated_at
				WHERE (excluded.source_updated_at > subscriptions.source_updated_at
						OR (excluded.source_updated_at = subscriptions.source_updated_at
							AND ${statusRank(sql`excluded.status`)} >= ${statusRank(sql`subscriptions.status`)}))
					AND subscriptions.status NOT IN (${FINAL})
					AND subscriptions.organization_id = excluded.organization_id`,
				applyPlan(orgId, now),
				// A subscription of a deleted organization is canceled (billing-endings.ts).
				endBillingWhenDeleted(orgId, now),
			);
			// Evaluated after the statements: the event did not apply (older, the subscription already
			// ended, or it belongs to another organization).
			plan.staleCheck = sql`(SELECT CASE WHEN source_updated_at > ${ts} OR organization_id <> ${orgId}
				OR (status IN (${FINAL}) AND status <> ${status})
				OR (source_updated_at = ${ts} AND ${statusRank(sql`status`)} > ${statusRank(sql`${status}`)}) THEN 1 ELSE 0 END
				FROM subscriptions WHERE subscription_id = ${subscriptionId})`;
			// The organization's plan once this applies: the best over what its other subscriptions and this one grant.
			const d1 = db.$client;
			const [storedRes, orgRes] = await d1.batch([
				d1
					.prepare(
						`SELECT subscription_id AS id, plan, status, current_period_end AS currentPeriodEnd, past_due_since AS pastDueSince
						FROM subscriptions WHERE organization_id = ?`,
					)
					.bind(orgId),
				d1.prepare("SELECT plan FROM organizations WHERE id = ?").bind(orgId),
			]);
			const stored = storedRes as D1Result<{ id: string; plan: string; status: string; currentPeriodEnd: number | null; pastDueSince: number | null }>;
			// The plan before this event, as stored when it is planned: before the consumer batch that applies it
			// (two events of one organization in one batch both name the plan from before the batch).
			const previousPlan = planOf((orgRes?.results[0] as { plan?: string } | undefined)?.plan);
			const before = stored.results.find((r) => r.id === subscriptionId);
			const pastDueSince = status !== "past_due" ? null : before?.status === "past_due" ? (before.pastDueSince ?? ts) : ts;
			const granted = bestPlan([
				...stored.results.filter((r) => r.id !== subscriptionId && grantsPlan(r, now)).map((r) => r.plan),
				grantsPlan({ status, currentPeriodEnd: periodEnd, pastDueSince }, now) ? planId : "free",
			]);
			const data = {
				organizationId: orgId,
				plan: granted,
				previousPlan,
				reason: type.replace("customer.", "").replace(".", "_"),
				subscriptionStatus: status,
				subscriptionId,
				subscriptionPlan: planId,
				cancelAtPeriodEnd: cancelAtPeriodEnd === 1,
				currentPeriodEnd: periodEnd,
				trialEnd,
				...(pastDueSince === null ? {} : { graceUntil: pastDueSince + PAST_DUE_GRACE_MS }),
			};
			plan.events = [
				systemAudit({
					id: `aud_${eventId}`,
					organizationId: orgId,
					action: "plan.changed",
					targetType: "subscription",
					targetId: subscriptionId,
					after: data,
				}),
				tenantEvent(orgId, "plan.changed", data, `evt_${eventId}`),
			];
			// A subscription granting a plan while another one does: the organization pays twice (Checkout expires
			// earlier sessions, but one paid before that, or a subscription made outside the API, gets through).
			// Decided in the batch, after this event's statements and those of the batch's earlier events (two
			// subscriptions going live in one batch), and recorded once per subscription (its id), for an
			// operator to cancel one.
			const others = sql`FROM subscriptions WHERE organization_id = ${orgId} AND subscription_id <> ${subscriptionId} AND ${grantsPlanAt(now)}`;
			plan.outbox = [
				outboxInsert(
					systemAudit({
						id: `aud_dup_${subscriptionId}`,
						organizationId: orgId,
						action: "billing.duplicate_subscription",
						targetType: "subscription",
						targetId: subscriptionId,
						after: { subscriptionId, plan: planId, status, alsoLive: [] },
					}),
					{
						set: { "$.after.alsoLive": sql`json((SELECT json_group_array(subscription_id) ${others}))` },
						when: sql`EXISTS (SELECT 1 ${others}) AND EXISTS (SELECT 1 FROM subscriptions WHERE subscription_id = ${subscriptionId}
							AND organization_id = ${orgId} AND ${grantsPlanAt(now)})`,
					},
				),
			];
			return plan;
		}
		case "invoice.paid":
		case "invoice.payment_failed": {
			// The invoice's subscription (`subscription`, or `parent.subscription_details.subscription` in
			// newer API versions). An invoice that names none is a one-off invoice (an add-on, a Dashboard
			// invoice): paid or failed, it says nothing of the customer's subscriptions.
			const subscriptionId =
				s(object.subscription) ?? s(obj(obj(obj(object.parent).subscription_details)).subscription);
			if (!subscriptionId) {
				plan.ignored = true;
				return plan;
			}
			const which = sql`subscription_id = ${subscriptionId}`;
			const paid = type === "invoice.paid";
			// A failed invoice makes a live subscription past_due (its grace starts). An incomplete one stays
			// incomplete: its first payment failed, it grants nothing, and Stripe ends it as incomplete_expired.
			// A paid renewal invoice covers the new period (its lines' period end): a renewal whose
			// customer.subscription.updated was lost still moves the period, so the cron does not end it.
			const lines = (obj(object.lines).data as Data[] | undefined) ?? [];
			const ends = lines.map((l) => n(obj(l.period).end)).filter((v): v is number => v !== null);
			const paidThrough = paid && ends.length > 0 ? Math.max(...ends) * 1000 : null;
			plan.statements.push(
				// A trial's (zero) invoice paid during the trial leaves it trialing, as Stripe has it; one paid after it ends makes it active.
				sql`UPDATE subscriptions SET status = ${paid ? sql`CASE WHEN status = 'trialing' AND trial_end > ${ts} THEN 'trialing' ELSE 'active' END` : "past_due"},
					past_due_since = ${paid ? null : sql`CASE WHEN status = 'past_due' THEN coalesce(past_due_since, ${ts}) ELSE ${ts} END`},
					current_period_end = ${paidThrough === null ? sql`current_period_end` : sql`max(coalesce(current_period_end, 0), ${paidThrough})`},
					source_updated_at = ${ts}, updated_at = ${now}
					WHERE organization_id = ${orgId} AND ${which} AND source_updated_at <= ${ts}
						AND status IN (${LIVE}${paid ? sql`, 'incomplete'` : sql``})`,
				// A plan the invoice moves (a paid one restoring a lapsed plan, say) is announced like the cron's:
				// written between the two statements, so it compares the stored plan with the one applyPlan sets.
				...planChangedOutbox(
					orgId,
					now,
					paid ? "invoice_paid" : "invoice_payment_failed",
					eventId,
					sql`EXISTS (SELECT 1 FROM subscriptions WHERE organization_id = ${orgId} AND ${which} AND source_updated_at = ${ts} AND updated_at = ${now})`,
				),
				applyPlan(orgId, now),
			);
			return plan;
		}
		default:
			plan.ignored = true;
			return plan;
	}
}
