import { type SQL, sql } from "drizzle-orm";
import type { Database } from "../db/client";
import type { Config } from "../env";
import { ApiError } from "../errors";
import { errorFields, type Logger } from "../lib/logger";
import { FINAL_SUBSCRIPTION_STATUSES, mayStillBill } from "./plans";
import { cancelStripeSubscription, settleCheckoutSession, stripeSubscriptionStatus } from "./stripe";

/** Stripe calls one cron run makes at most (an organization's work stops there and goes on next minute). */
const CALLS_PER_RUN = 20;

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
	/** Organizations left for the next run: Stripe unreachable or refusing, or this run's calls spent. */
	pending: number;
}

const FINAL = sql.join(
	FINAL_SUBSCRIPTION_STATUSES.map((v) => sql`${v}`),
	sql`, `,
);

/**
 * Cron: a deleted organization (Clerk's organization.deleted, or an operator's offboarding) is no longer
 * billed. For each organization in billing_endings, oldest first: every Checkout Session it opened is
 * expired at Stripe (so none can be paid any more), and every subscription Stripe may still bill (any status
 * but canceled or incomplete_expired) is canceled now (DELETE /v1/subscriptions/:id: Stripe's defaults, no
 * proration credit and no refund). D1 records the subscription's final status as Stripe answered it, so the
 * run does not repeat; Stripe's customer.subscription.deleted webhook then changes nothing. A Checkout that
 * was paid just before it could be expired makes a subscription whose webhook queues the organization again
 * (services/billing-sync.ts), and the next run cancels it. When Stripe is unreachable the organization stays
 * queued and is tried again next minute; without STRIPE_SECRET_KEY nothing is done (nothing was billed).
 */
export async function endBillingOfDeletedOrgs(db: Database, config: Config, logger: Logger, now = Date.now()): Promise<EndedBilling> {
	const ended: EndedBilling = { organizations: 0, canceled: 0, expired: 0, pending: 0 };
	if (!config.STRIPE_SECRET_KEY) return ended;
	const d1 = db.$client;
	const { results: queued } = await d1
		.prepare("SELECT organization_id AS organizationId, created_at AS queuedAt FROM billing_endings ORDER BY created_at, organization_id LIMIT ?")
		.bind(CALLS_PER_RUN)
		.all<{ organizationId: string; queuedAt: number }>();
	let calls = 0;
	for (const { organizationId, queuedAt } of queued) {
		if (calls >= CALLS_PER_RUN) {
			ended.pending++;
			continue;
		}
		const [sessions, subs] = await d1.batch<{ id: string }>([
			d1.prepare("SELECT session_id AS id FROM checkout_sessions WHERE organization_id = ? ORDER BY seq").bind(organizationId),
			d1
				.prepare(
					`SELECT subscription_id AS id FROM subscriptions WHERE organization_id = ? AND provider = 'stripe'
					AND status NOT IN (${FINAL_SUBSCRIPTION_STATUSES.map(() => "?").join(", ")})`,
				)
				.bind(organizationId, ...FINAL_SUBSCRIPTION_STATUSES),
		]);
		const work = [
			...(sessions?.results ?? []).map((r) => ({ kind: "session" as const, id: r.id })),
			...(subs?.results ?? []).map((r) => ({ kind: "subscription" as const, id: r.id })),
		];
		let left = work.length;
		try {
			for (const w of work) {
				if (calls >= CALLS_PER_RUN) break;
				calls++;
				if (w.kind === "session") {
					// "live": it was paid; its subscription is canceled below, or once its webhook records it.
					await settleCheckoutSession(config, w.id);
					await d1.prepare("DELETE FROM checkout_sessions WHERE session_id = ?").bind(w.id).run();
					ended.expired++;
				} else {
					const status = await cancelAtStripe(config, w.id);
					await db.run(sql`UPDATE subscriptions SET status = ${status}, cancel_at_period_end = 0, updated_at = ${now}
						WHERE subscription_id = ${w.id} AND status NOT IN (${FINAL})`);
					ended.canceled++;
				}
				left--;
			}
		} catch (err) {
			logger.warn("ending a deleted organization's billing failed; tried again next run", { orgId: organizationId, ...errorFields(err) });
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

/** Cancels the subscription now; its final status at Stripe (one Stripe refuses to cancel is asked for). */
async function cancelAtStripe(config: Config, subscriptionId: string): Promise<string> {
	try {
		const state = await cancelStripeSubscription(config, subscriptionId, false);
		if (!mayStillBill(state.status)) return state.status;
	} catch (err) {
		// Refused (already canceled, or unknown to Stripe): what is it now? Unreachable: tried again next run.
		if (!(err instanceof ApiError && err.code === "CONFLICT")) throw err;
	}
	const status = await stripeSubscriptionStatus(config, subscriptionId);
	if (mayStillBill(status)) throw new Error(`Stripe did not cancel subscription ${subscriptionId} (status ${status})`);
	return status;
}
