import { sql } from "drizzle-orm";

/** Plan catalogue: entitlements (features and limits) per plan. Organizations may override rate limits in D1. */
export const PLAN_IDS = ["free", "pro", "enterprise"] as const;
export type PlanId = (typeof PLAN_IDS)[number];

const FEATURES = ["outgoing_webhooks", "audit_log", "custom_roles", "priority_support"] as const;
export type Feature = (typeof FEATURES)[number];

export interface PlanLimits {
	/** Requests per minute for the whole organization. */
	requestsPerMinute: number;
	/** Requests per minute for one user within the organization. */
	userRequestsPerMinute: number;
	/** Metered API calls per calendar month (UTC). */
	monthlyApiQuota: number;
	seats: number;
	/** Live (not revoked, not expired) tenant API keys. */
	apiKeys: number;
}

interface Plan {
	id: PlanId;
	name: string;
	/** Monthly price for Stripe Checkout, in the currency's smallest unit. */
	priceMinor: number;
	currency: string;
	features: Record<Feature, boolean>;
	limits: PlanLimits;
	/**
	 * Usage-based billing: the organization's API calls are reported to Stripe's Billing Meter
	 * (STRIPE_METER_EVENT_NAME) for a metered price to bill, and Checkout adds that price
	 * (STRIPE_METERED_PRICE_ID) next to the monthly one. See services/metered-billing.ts.
	 */
	meteredBilling: boolean;
}

/** A monthly plan priced in US cents; it has the features listed, every other one is off. */
function plan(
	id: PlanId,
	name: string,
	priceMinor: number,
	has: readonly Feature[],
	limits: PlanLimits,
	meteredBilling = false,
): Plan {
	const features = Object.fromEntries(FEATURES.map((f) => [f, has.includes(f)])) as Record<Feature, boolean>;
	return { id, name, priceMinor, currency: "usd", features, limits, meteredBilling };
}

export const PLANS: Record<PlanId, Plan> = {
	free: plan("free", "Free", 0, ["audit_log"], {
		requestsPerMinute: 120,
		userRequestsPerMinute: 60,
		monthlyApiQuota: 10_000,
		seats: 5,
		apiKeys: 2,
	}),
	pro: plan("pro", "Pro", 4_900, ["outgoing_webhooks", "audit_log", "custom_roles"], {
		requestsPerMinute: 1_200,
		userRequestsPerMinute: 300,
		monthlyApiQuota: 1_000_000,
		seats: 50,
		apiKeys: 50,
	}),
	// Enterprise opts in to usage-based billing (its API calls are billed by a metered price).
	enterprise: plan(
		"enterprise",
		"Enterprise",
		49_900,
		FEATURES,
		{ requestsPerMinute: 12_000, userRequestsPerMinute: 2_000, monthlyApiQuota: 100_000_000, seats: 1_000, apiKeys: 1_000 },
		true,
	),
};

export function planOf(plan: string | null | undefined): PlanId {
	return (PLAN_IDS as readonly string[]).includes(plan ?? "") ? (plan as PlanId) : "free";
}

/** Plans in order of value: free < pro < enterprise (the order of PLAN_IDS). Unknown plans rank as free. */
export function planRank(plan: string | null | undefined): number {
	return PLAN_IDS.indexOf(planOf(plan));
}

/** The best of some plans (free when there are none). */
export function bestPlan(plans: Iterable<string | null | undefined>): PlanId {
	let best: PlanId = "free";
	for (const p of plans) if (planRank(p) > planRank(best)) best = planOf(p);
	return best;
}

/** Subscription statuses that grant the subscription's plan; every other status grants nothing. */
export const LIVE_SUBSCRIPTION_STATUSES = ["active", "trialing", "past_due"] as const;
/** Subscription statuses Stripe never leaves: later events must not revive such a subscription. */
export const FINAL_SUBSCRIPTION_STATUSES = ["canceled", "incomplete_expired"] as const;

/** The two status lists as SQL value lists, for `status IN (…)` (constants, bound as parameters). */
const sqlList = (values: readonly string[]) =>
	sql.join(
		values.map((v) => sql`${v}`),
		sql`, `,
	);
export const LIVE_STATUSES_SQL = sqlList(LIVE_SUBSCRIPTION_STATUSES);
export const FINAL_STATUSES_SQL = sqlList(FINAL_SUBSCRIPTION_STATUSES);

/**
 * Whether Stripe may still bill the subscription: any status but a final one (canceled, incomplete_expired).
 * Besides the live ones: incomplete (its first payment being confirmed), unpaid (invoices still generated) and
 * paused (resumed once a payment method is added). Such a subscription blocks a second Checkout.
 */
export function mayStillBill(status: string | null | undefined): boolean {
	return !(FINAL_SUBSCRIPTION_STATUSES as readonly string[]).includes(status ?? "canceled");
}

export function isLiveSubscription(status: string | null | undefined): boolean {
	return (LIVE_SUBSCRIPTION_STATUSES as readonly string[]).includes(status ?? "");
}

const DAY_MS = 24 * 60 * 60 * 1000;
/**
 * Grace period of a past_due subscription: its plan is kept for 7 days from the event that made it
 * past_due (Stripe retries the payment meanwhile), then the organization falls back to free until an
 * invoice.paid (or a subscription update back to active) arrives.
 */
export const PAST_DUE_GRACE_MS = 7 * DAY_MS;
/**
 * How long after current_period_end (the trial's end while trialing) a live subscription is still
 * trusted without a renewal event: Stripe moves the period at renewal and sends the update right away,
 * so a period that ended a day ago without one means a lost renewal or a lost cancellation. The plan
 * then falls back to free; a late renewal event restores it.
 */
export const PERIOD_END_LEEWAY_MS = DAY_MS;

/** What decides whether a subscription still grants its plan at a given time. */
export interface SubscriptionTerms {
	status: string;
	currentPeriodEnd: number | null;
	pastDueSince: number | null;
}

/**
 * Whether the subscription grants its plan at `now` (ms): a live status, its period (plus the
 * leeway) not over, and when past_due, within the grace period. The SQL twin is in billing-sync.ts.
 */
export function grantsPlan(sub: SubscriptionTerms, now: number): boolean {
	if (!isLiveSubscription(sub.status)) return false;
	if (sub.currentPeriodEnd !== null && sub.currentPeriodEnd + PERIOD_END_LEEWAY_MS <= now) return false;
	return !(sub.status === "past_due" && sub.pastDueSince !== null && sub.pastDueSince + PAST_DUE_GRACE_MS <= now);
}

/** An organization's overrides of its plan's limits (null or absent: the plan's). */
interface Overrides {
	rateLimitPerMinute?: number | null;
	userRateLimitPerMinute?: number | null;
	monthlyQuota?: number | null;
	seatLimit?: number | null;
}

export function limitsFor(plan: string | null | undefined, overrides: Overrides = {}): PlanLimits {
	const base = PLANS[planOf(plan)].limits;
	return {
		...base,
		seats: overrides.seatLimit ?? base.seats,
		monthlyApiQuota: overrides.monthlyQuota ?? base.monthlyApiQuota,
		requestsPerMinute: overrides.rateLimitPerMinute ?? base.requestsPerMinute,
		userRequestsPerMinute: overrides.userRateLimitPerMinute ?? base.userRequestsPerMinute,
	};
}

/** The cheapest plan that has a feature, for the 402 message. */
export function cheapestPlanWith(feature: Feature): PlanId {
	return PLAN_IDS.find((p) => PLANS[p].features[feature]) ?? "enterprise";
}

/**
 * For a 402's hint: the cheapest plan ranked above `plan` under which the organization would have at
 * least `needed` of `limit`, its overrides applied (a plan change keeps them); null when none would.
 */
export function upgradeFor(plan: string, limit: "seats" | "apiKeys", needed: number, overrides?: Overrides): PlanId | null {
	return PLAN_IDS.find((p) => planRank(p) > planRank(plan) && limitsFor(p, overrides)[limit] >= needed) ?? null;
}

/** Budget per client IP for unauthenticated public routes (health, provider webhooks). */
export const PUBLIC_REQUESTS_PER_MINUTE = 600;
/** Budget per user for authenticated routes outside an organization (/api/me, operator routes, payments). */
export const USER_REQUESTS_PER_MINUTE = 600;
/** Budget per client IP for API keys that are not ours (unknown, revoked, expired): each costs a D1 lookup. */
export const BAD_API_KEYS_PER_MINUTE = 60;
