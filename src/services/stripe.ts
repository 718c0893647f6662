import Stripe from "stripe";
import type { Config } from "../env";
import { ApiError } from "../errors";
import { PLANS, type PlanId } from "./plans";

export const STRIPE_TOLERANCE_SECONDS = 300;
/** Web Crypto for signature checks (no Node crypto in Workers). */
export const stripeCrypto = Stripe.createSubtleCryptoProvider();

/**
 * The envelope fields every Stripe event has (id evt_…, type, created in seconds), checked on a body
 * whose signature is already verified: without them the event cannot be deduplicated, routed or ordered,
 * so it is refused with a 400 at the webhook route instead of being queued and dropped later.
 */
export function stripeEventEnvelope(event: unknown): { id: string; type: string; created: number } {
	const e = (typeof event === "object" && event !== null && !Array.isArray(event) ? event : {}) as Record<string, unknown>;
	const errors: { path: string; message: string }[] = [];
	if (typeof e.id !== "string" || e.id.length === 0 || e.id.length > 255) errors.push({ path: "id", message: "required" });
	if (typeof e.type !== "string" || e.type.length === 0 || e.type.length > 255) errors.push({ path: "type", message: "required" });
	if (typeof e.created !== "number" || !Number.isSafeInteger(e.created) || e.created <= 0)
		errors.push({ path: "created", message: "required (seconds since the epoch)" });
	if (errors.length > 0) throw new ApiError("VALIDATION_FAILED", "body is not a Stripe event", { errors });
	return { id: e.id as string, type: e.type as string, created: e.created as number };
}

// One client per secret key and API base, reused across requests: it holds no per-request state.
const clients = new Map<string, Stripe>();

/**
 * Stripe SDK on the fetch HTTP client, talking to STRIPE_API_BASE (the real API by default; a proxy
 * or a local fake otherwise). Webhook verification alone needs no API key.
 */
export function stripeClient(config: Pick<Config, "STRIPE_SECRET_KEY" | "STRIPE_API_BASE">): Stripe {
	const key = config.STRIPE_SECRET_KEY ?? "sk_unset";
	const cacheKey = `${config.STRIPE_API_BASE} ${key}`;
	let client = clients.get(cacheKey);
	if (!client) {
		const base = new URL(config.STRIPE_API_BASE);
		// fetch is looked up per call (not captured), so it is always the runtime's current global.
		client = new Stripe(key, {
			httpClient: Stripe.createFetchHttpClient((input, init) => fetch(input, init)),
			maxNetworkRetries: 1,
			timeout: 10_000,
			host: base.hostname,
			protocol: base.protocol === "http:" ? "http" : "https",
			...(base.port ? { port: base.port } : {}),
		});
		clients.set(cacheKey, client);
	}
	return client;
}

/** A subscription Checkout Session for the organization; the webhook later moves its plan. */
export async function createCheckoutSession(
	config: Config,
	input: {
		organizationId: string;
		plan: Exclude<PlanId, "free">;
		successUrl: string;
		cancelUrl: string;
		customerId?: string | null;
		email?: string | null;
	},
): Promise<{ id: string; url: string | null }> {
	if (!config.STRIPE_SECRET_KEY) throw new ApiError("BAD_ENVIRONMENT", "STRIPE_SECRET_KEY is not configured");
	const plan = PLANS[input.plan];
	try {
		const session = await stripeClient(config).checkout.sessions.create({
			mode: "subscription",
			client_reference_id: input.organizationId,
			...(input.customerId ? { customer: input.customerId } : input.email ? { customer_email: input.email } : {}),
			line_items: [
				{
					quantity: 1,
					price_data: {
						currency: plan.currency,
						unit_amount: plan.priceMinor,
						recurring: { interval: "month" },
						product_data: { name: `${plan.name} plan`, metadata: { plan: plan.id } },
					},
				},
			],
			metadata: { organizationId: input.organizationId, plan: plan.id },
			subscription_data: { metadata: { organizationId: input.organizationId, plan: plan.id } },
			success_url: input.successUrl,
			cancel_url: input.cancelUrl,
		});
		return { id: session.id, url: session.url };
	} catch (err) {
		if (err instanceof Stripe.errors.StripeInvalidRequestError)
			throw new ApiError("BAD_REQUEST", `Stripe refused the session: ${err.message}`);
		throw new ApiError("UPSTREAM_UNAVAILABLE", "Stripe could not be reached");
	}
}

/** A Stripe failure as a problem: Stripe's refusal is `refused` (409 by default) with its message, anything else a 503. */
function stripeFailure(err: unknown, what: string, refused: "CONFLICT" | "BAD_REQUEST" = "CONFLICT"): ApiError {
	if (err instanceof Stripe.errors.StripeInvalidRequestError) return new ApiError(refused, `Stripe refused ${what}: ${err.message}`);
	return new ApiError("UPSTREAM_UNAVAILABLE", "Stripe could not be reached");
}

function requireKey(config: Config): void {
	if (!config.STRIPE_SECRET_KEY) throw new ApiError("BAD_ENVIRONMENT", "STRIPE_SECRET_KEY is not configured");
}

/** A Billing Portal session for the customer (change plan, payment method, cancel): its one-time URL. */
export async function createPortalSession(
	config: Config,
	input: { customerId: string; returnUrl?: string | undefined },
): Promise<{ id: string; url: string }> {
	requireKey(config);
	try {
		const session = await stripeClient(config).billingPortal.sessions.create({
			customer: input.customerId,
			...(input.returnUrl ? { return_url: input.returnUrl } : {}),
		});
		return { id: session.id, url: session.url };
	} catch (err) {
		throw stripeFailure(err, "the portal session");
	}
}

/** A subscription's state as Stripe returned it (times in ms). */
export interface StripeSubscriptionState {
	subscriptionId: string;
	status: string;
	cancelAtPeriodEnd: boolean;
	cancelAt: number | null;
	canceledAt: number | null;
	currentPeriodEnd: number | null;
	trialEnd: number | null;
}

const msOrNull = (v: number | null | undefined) => (typeof v === "number" ? v * 1000 : null);

function subscriptionState(sub: Stripe.Subscription): StripeSubscriptionState {
	// Since API version 2025-03-31 the period is on the items; earlier versions had it on the subscription.
	const legacy = (sub as unknown as { current_period_end?: number | null }).current_period_end;
	const fromItems = sub.items?.data?.map((i) => i.current_period_end).filter((v) => typeof v === "number") ?? [];
	return {
		subscriptionId: sub.id,
		status: sub.status,
		cancelAtPeriodEnd: sub.cancel_at_period_end === true,
		cancelAt: msOrNull(sub.cancel_at),
		canceledAt: msOrNull(sub.canceled_at),
		currentPeriodEnd: msOrNull(legacy ?? (fromItems.length > 0 ? Math.max(...fromItems) : null)),
		trialEnd: msOrNull(sub.trial_end),
	};
}

/**
 * Cancels a subscription: at the end of its current period (cancel_at_period_end, the plan is kept
 * until then) or right away (DELETE /v1/subscriptions/:id). The webhook then moves the plan.
 */
export async function cancelStripeSubscription(
	config: Config,
	subscriptionId: string,
	atPeriodEnd: boolean,
): Promise<StripeSubscriptionState> {
	requireKey(config);
	try {
		const client = stripeClient(config);
		const sub = atPeriodEnd
			? await client.subscriptions.update(subscriptionId, { cancel_at_period_end: true })
			: await client.subscriptions.cancel(subscriptionId);
		return subscriptionState(sub);
	} catch (err) {
		throw stripeFailure(err, "the cancellation");
	}
}

/** An invoice as the API returns it (amounts in the currency's smallest unit, times in ms). */
export interface InvoiceView {
	id: string;
	number: string | null;
	status: string | null;
	currency: string;
	total: number;
	amountDue: number;
	amountPaid: number;
	created: number;
	periodStart: number;
	periodEnd: number;
	hostedInvoiceUrl: string | null;
	invoicePdf: string | null;
	subscriptionId: string | null;
}

function invoiceView(inv: Stripe.Invoice): InvoiceView {
	const parentSub = inv.parent?.subscription_details?.subscription;
	const legacySub = (inv as unknown as { subscription?: string | { id: string } | null }).subscription;
	const sub = parentSub ?? legacySub ?? null;
	return {
		id: inv.id ?? "",
		number: inv.number ?? null,
		status: inv.status ?? null,
		currency: inv.currency,
		total: inv.total,
		amountDue: inv.amount_due,
		amountPaid: inv.amount_paid,
		created: inv.created * 1000,
		periodStart: inv.period_start * 1000,
		periodEnd: inv.period_end * 1000,
		hostedInvoiceUrl: inv.hosted_invoice_url ?? null,
		invoicePdf: inv.invoice_pdf ?? null,
		subscriptionId: typeof sub === "string" ? sub : (sub?.id ?? null),
	};
}

/** One page of the customer's invoices, newest first; Stripe's starting_after (an invoice id) is the cursor. */
export async function listStripeInvoices(
	config: Config,
	input: { customerId: string; limit: number; startingAfter?: string | undefined },
): Promise<{ data: InvoiceView[]; nextCursor: string | null }> {
	requireKey(config);
	try {
		const page = await stripeClient(config).invoices.list({
			customer: input.customerId,
			limit: input.limit,
			...(input.startingAfter ? { starting_after: input.startingAfter } : {}),
		});
		const data = page.data.map(invoiceView);
		return { data, nextCursor: page.has_more && data.length > 0 ? (data.at(-1)?.id ?? null) : null };
	} catch (err) {
		// An unknown starting_after (a cursor not from this list) is Stripe's 400 resource_missing.
		throw stripeFailure(err, "the invoice list", "BAD_REQUEST");
	}
}
