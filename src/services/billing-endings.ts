import { type SQL, sql } from "drizzle-orm";
import { runBatch } from "../db/batch";
import type { Database } from "../db/client";
import type { Config } from "../env";
import { ApiError } from "../errors";
import { errorFields, type Logger } from "../lib/logger";
import { FINAL_STATUSES_SQL as FINAL, mayStillBill } from "./plans";
import { cancelStripeSubscription, settleCheckoutSession, stripeSubscriptionStatus } from "./stripe";

/**
 * Stripe requests one cron run makes at most (retries aside): each Checkout Session and each subscription
 * takes one or two (expire or cancel; then a GET when Stripe refused it), so a run ends at most 10.
 */
const REQUESTS_PER_RUN = 20;
/** Failed organizations after which a run stops (Stripe down or hanging: each failure may have waited for timeouts). */
const FAILURES_PER_RUN = 3;

/**
 * Queues a deleted organization's billing to be ended (billing_endings), in the batch that deleted it or
 * that recorded one of its subscriptions: writes the row only when the organization is deleted by then. A
 * row already queued gets a later created_at, so a run that read the organization before keeps it queued.
 */
export function endBillingWhenDeleted(organizationId: string, now: number): SQL {
	return sql`INSERT INTO billing_endings (organization_id, created_at)
		SELECT id, ${now} FROM organizations WHERE id = ${organizationId} AND deleted_at IS NOT NULL
		ON CONFLICT (organization_id) DO UPDATE SET created_at = max(excluded.created_at, billing_endings.created_at + 1)`;
}

export interface EndedBilling {
	/** Organizations with nothing left to end, removed from billing_endings. */
	organizations: number;
	/** Subscriptions canceled at Stripe (or found ended there). */
	canceled: number;
	/** Checkout Sessions expired at Stripe (or found settled). */
	expired: number;
	/** Organizations left for a later run: a failure (moved behind the others), or this run's requests spent. */
	pending: number;
}


/**
 * Cron: a deleted organization (Clerk's organization.deleted, or an operator's offboarding) is no longer
 * billed. For each organization in billing_endings, oldest first: every Checkout Session it opened is
 * expired at Stripe (so none can be paid any more; one already paid has its subscription canceled too), and
 * every subscription D1 holds for it that Stripe may still bill (any status but canceled or
 * incomplete_expired) is canceled now: DELETE /v1/subscriptions/:id with a last invoice for what is pending
 * (metered usage reported this period) and no proration credit. D1 records the final status Stripe answered,
 * so the run does not repeat and Stripe's customer.subscription.deleted then changes nothing. A subscription
 * event arriving for a deleted organization queues it again (services/billing-sync.ts), and so does a
 * Checkout opened as it was deleted (billing.ts). An organization whose work fails (Stripe unreachable, or
 * refusing) is moved behind the others and tried again next run; a run stops after three failures. Without
 * STRIPE_SECRET_KEY nothing is done (nothing was billed).
 */
export async function endBillingOfDeletedOrgs(db: Database, config: Config, logger: Logger, now = Date.now()): Promise<EndedBilling> {
	const ended: EndedBilling = { organizations: 0, canceled: 0, expired: 0, pending: 0 };
	if (!config.STRIPE_SECRET_KEY) return ended;
	const d1 = db.$client;
	const { results: queued } = await d1
		.prepare("SELECT organization_id AS organizationId, created_at AS queuedAt FROM billing_endings ORDER BY created_at, organization_id LIMIT ?")
		.bind(REQUESTS_PER_RUN / 2)
		.all<{ organizationId: string; queuedAt: number }>();
	let budget = REQUESTS_PER_RUN;
	let failures = 0;
	for (const { organizationId, queuedAt } of queued) {
		if (budget < 2 || failures >= FAILURES_PER_RUN) {
			ended.pending++;
			continue;
		}
		const [sessions, subs] = await runBatch<{ id: string }>(d1, [
			sql`SELECT session_id AS id FROM checkout_sessions WHERE organization_id = ${organizationId} ORDER BY seq`,
			sql`SELECT subscription_id AS id FROM subscriptions WHERE organization_id = ${organizationId} AND provider = 'stripe'
				AND status NOT IN (${FINAL})`,
		]);
		const work = [
			...(sessions?.results ?? []).map((r) => ({ kind: "session" as const, id: r.id })),
			...(subs?.results ?? []).map((r) => ({ kind: "subscription" as const, id: r.id })),
		];
		let left = work.length;
		try {
			for (const w of work) {
				if (budget < 2) break;
				budget -= 2;
				if (w.kind === "session") {
					const settled = await settleCheckoutSession(config, w.id);
					// Paid before it could be expired: its subscription is ended now, known to D1 or not (its webhook may never come).
					if (settled.state === "live" && settled.subscriptionId && !work.some((x) => x.id === settled.subscriptionId)) {
						// No requests left: the session stays recorded, and the next run finds it paid again.
						if (budget < 2) break;
						budget -= 2;
						await recordEnded(db, organizationId, settled.subscriptionId, await cancelAtStripe(config, settled.subscriptionId), now);
						ended.canceled++;
					}
					await d1.prepare("DELETE FROM checkout_sessions WHERE session_id = ?").bind(w.id).run();
					ended.expired++;
				} else {
					await recordEnded(db, organizationId, w.id, await cancelAtStripe(config, w.id), now);
					ended.canceled++;
				}
				left--;
			}
		} catch (err) {
			failures++;
			logger.warn("ending a deleted organization's billing failed; tried again later", { orgId: organizationId, ...errorFields(err) });
			// Behind the others, so one that keeps failing does not hold them up.
			await d1
				.prepare("UPDATE billing_endings SET created_at = ? WHERE organization_id = ? AND created_at = ?")
				.bind(Math.max(now, Date.now(), queuedAt + 1), organizationId, queuedAt)
				.run();
		}
		if (left > 0) {
			ended.pending++;
			continue;
		}
		// Only if it was not queued again meanwhile (a subscription event for it, recorded after the reads above).
		await d1.prepare("DELETE FROM billing_endings WHERE organization_id = ? AND created_at = ?").bind(organizationId, queuedAt).run();
		ended.organizations++;
		logger.info("billing of a deleted organization ended", { orgId: organizationId, items: work.length });
	}
	return ended;
}

/**
 * The subscription's final status in D1: the row its webhooks wrote, or a new one (plan free, as if never
 * granted) for one only the Checkout Session named; a final status is never replaced, and later events
 * for it do not revive it (billing-sync.ts).
 */
async function recordEnded(db: Database, organizationId: string, subscriptionId: string, status: string, now: number): Promise<void> {
	await db.run(sql`INSERT INTO subscriptions (organization_id, provider, subscription_id, plan, status, source_updated_at, updated_at)
		VALUES (${organizationId}, 'stripe', ${subscriptionId}, 'free', ${status}, 0, ${now})
		ON CONFLICT (subscription_id) DO UPDATE SET status = excluded.status, cancel_at_period_end = 0, updated_at = excluded.updated_at
		WHERE subscriptions.status NOT IN (${FINAL})`);
}

/** Cancels the subscription now; its final status at Stripe (one Stripe refuses to cancel is asked for). */
async function cancelAtStripe(config: Config, subscriptionId: string): Promise<string> {
	try {
		const state = await cancelStripeSubscription(config, subscriptionId, false, { final: true });
		if (!mayStillBill(state.status)) return state.status;
	} catch (err) {
		// Refused (already canceled, or unknown to Stripe): what is it now? Unreachable: tried again later.
		if (!(err instanceof ApiError && err.code === "CONFLICT")) throw err;
	}
	const status = await stripeSubscriptionStatus(config, subscriptionId);
	if (mayStillBill(status)) throw new ApiError("CONFLICT", `Stripe did not cancel subscription ${subscriptionId} (status ${status})`);
	return status;
}
