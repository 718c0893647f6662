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
