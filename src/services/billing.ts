import { eq } from "drizzle-orm";
import type { Database } from "../db/client";
import { subscriptions } from "../db/schema";
import type { Config, Env } from "../env";
import type { Logger } from "../lib/logger";
import type { RequestMeta } from "../lib/request-meta";
import { publishChange } from "./events-bus";
import { PLANS, type PlanId, type PlanLimits, planOf } from "./plans";
import { createCheckoutSession } from "./stripe";
import { getUser } from "./users";

/** What the billing and payments services need of a request, as plain values. */
export interface BillingDeps {
	db: Database;
	env: Env;
	config: Config;
	meta: RequestMeta;
	logger: Logger;
}

async function findSubscription(db: Database, organizationId: string) {
	const [sub] = await db.select().from(subscriptions).where(eq(subscriptions.organizationId, organizationId));
	return sub;
}

/** Plan, subscription state and entitlements of an organization (limits as resolved, with its overrides). */
export async function billingState(db: Database, organization: { id: string; plan: string }, limits: PlanLimits) {
	const sub = await findSubscription(db, organization.id);
	const plan = planOf(organization.plan);
	return {
		organizationId: organization.id,
		plan,
		status: sub?.status ?? "none",
		periodEnd: sub?.currentPeriodEnd ?? null,
		provider: sub?.provider ?? null,
		entitlements: { features: PLANS[plan].features, limits },
	};
}

/** A Stripe Checkout Session for a paid plan, reusing the organization's Stripe customer when it has one. */
export async function startCheckout(
	deps: BillingDeps,
	organizationId: string,
	userId: string,
	input: { plan: Exclude<PlanId, "free">; successUrl: string; cancelUrl: string },
): Promise<{ id: string; url: string | null }> {
	const sub = await findSubscription(deps.db, organizationId);
	const user = await getUser(deps.db, userId);
	const session = await createCheckoutSession(deps.config, {
		organizationId,
		plan: input.plan,
		successUrl: input.successUrl,
		cancelUrl: input.cancelUrl,
		customerId: sub?.customerId,
		email: user?.email,
	});
	await publishChange(deps.env, deps.meta, deps.logger, {
		organizationId,
		action: "billing.checkout_started",
		targetType: "checkout_session",
		targetId: session.id,
		after: { plan: input.plan },
	});
	return session;
}
