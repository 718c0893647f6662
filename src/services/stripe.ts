import type { Config } from "../env";
import { ApiError } from "../errors";
import { hmacSha256Hex, timingSafeEqual } from "../lib/crypto";
import { mayStillBill, PLANS, type PlanId } from "./plans";

/** How old a signed webhook may be, in seconds (Stripe's SDK default). */
const STRIPE_TOLERANCE_SECONDS = 300;
/** The API version every request pins (the one stripe-node 23.1.0 sent); the shapes read below are its own. */
const STRIPE_API_VERSION = "2026-10-28.endive";
const TIMEOUT_MS = 10_000;
/** One retry, after this long, for what Stripe's SDK retries: no answer, 409, 5xx, or Stripe-Should-Retry: true. */
const RETRY_DELAY_MS = 500;

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
	// A thin event (an event destination's v2 notification) names no snapshot to apply: this endpoint takes snapshot events.
	if (e.object === "v2.core.event") {
		throw new ApiError("VALIDATION_FAILED", "a thin event (v2.core.event): send this endpoint snapshot events", {
			errors: [{ path: "object", message: "must be a snapshot event, not v2.core.event" }],
		});
	}
	if (errors.length > 0) throw new ApiError("VALIDATION_FAILED", "body is not a Stripe event", { errors });
	return { id: e.id as string, type: e.type as string, created: e.created as number };
}

/** A Stripe API error: its HTTP status and Stripe's error type, code and message. */
class StripeApiError extends Error {
	constructor(
		readonly status: number,
		readonly type: string | undefined,
		readonly code: string | undefined,
		message: string,
	) {
		super(message);
	}
}

/** What Stripe's SDK calls StripeInvalidRequestError: a 400 or 404 that is neither a rate limit nor an idempotency clash. */
function isInvalidRequest(err: unknown): err is StripeApiError {
	return (
		err instanceof StripeApiError &&
		(err.status === 400 || err.status === 404) &&
		err.type !== "idempotency_error" &&
		err.code !== "rate_limit"
	);
}

type FormValue = string | number | boolean | null | undefined | FormValue[] | { [key: string]: FormValue };

/**
 * Stripe's form encoding of nested parameters, as its SDKs write it: `metadata[plan]=pro`,
 * `line_items[0][price_data][currency]=usd`; undefined is left out, null is an empty value (unset).
 * Brackets stay readable (Stripe accepts them encoded or not).
 */
function stripeForm(params: Record<string, FormValue>): string {
	const pairs: string[] = [];
	const enc = (v: string) =>
		encodeURIComponent(v)
			.replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
			.replace(/%5B/g, "[")
			.replace(/%5D/g, "]");
	const add = (key: string, value: FormValue) => {
		if (value === undefined) return;
		if (value === null || typeof value !== "object") pairs.push(`${enc(key)}=${enc(value === null ? "" : String(value))}`);
		else if (Array.isArray(value)) value.forEach((v, i) => add(`${key}[${i}]`, v));
		else for (const [k, v] of Object.entries(value)) add(`${key}[${k}]`, v);
	};
	for (const [k, v] of Object.entries(params)) add(k, v);
	return pairs.join("&");
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One call to Stripe's v1 API at STRIPE_API_BASE (the real API by default; a proxy or a local fake
 * otherwise): a form-encoded body for POST, the query string otherwise, the pinned API version, and
 * an Idempotency-Key on every POST that its retry reuses.
 */
async function stripeRequest<T>(
	config: Pick<Config, "STRIPE_SECRET_KEY" | "STRIPE_API_BASE">,
	method: "GET" | "POST" | "DELETE",
	path: string,
	params: Record<string, FormValue> = {},
): Promise<T> {
	const form = stripeForm(params);
	// Appended (STRIPE_API_BASE has no trailing slash): a base with a path keeps it, as RAZORPAY_API_BASE's does.
	const url = new URL(`${config.STRIPE_API_BASE}${path}`);
	if (method !== "POST" && form) url.search = form;
	const headers: Record<string, string> = {
		accept: "application/json",
		authorization: `Bearer ${config.STRIPE_SECRET_KEY ?? "sk_unset"}`,
		"content-type": "application/x-www-form-urlencoded",
		"stripe-version": STRIPE_API_VERSION,
	};
	// As Stripe's SDK does: a fresh key per POST, the same for its retry (Stripe then replays the first answer).
	if (method === "POST") headers["idempotency-key"] = crypto.randomUUID();
	for (let attempt = 0; ; attempt++) {
		let res: Response;
		try {
			res = await fetch(url, { method, headers, signal: AbortSignal.timeout(TIMEOUT_MS), ...(method === "POST" ? { body: form } : {}) });
		} catch (err) {
			if (attempt === 0) {
				await sleep(RETRY_DELAY_MS);
				continue;
			}
			throw err;
		}
		const should = res.headers.get("stripe-should-retry");
		if (attempt === 0 && should !== "false" && (should === "true" || res.status === 409 || res.status >= 500)) {
			await res.body?.cancel();
			await sleep(RETRY_DELAY_MS);
			continue;
		}
		let body: { error?: { type?: string; code?: string; message?: string } };
		try {
			body = JSON.parse(await res.text()) as typeof body;
		} catch {
			throw new StripeApiError(res.status, "api_error", undefined, "Invalid JSON received from the Stripe API");
		}
		if (body.error || !res.ok) {
			const e = body.error ?? {};
			throw new StripeApiError(res.status, e.type, e.code, e.message ?? `Stripe answered ${res.status}`);
		}
		return body as T;
	}
}

/**
 * Checks a Stripe-Signature header (`t=<seconds>,v1=<hex>[,v1=…]`) the way Stripe's SDK does:
 * HMAC-SHA256 of `<t>.<raw body>` with the endpoint secret, compared in constant time with every v1
 * signature, and the timestamp no older than the tolerance. Answers the parsed event; throws otherwise.
 */
export async function verifyStripeWebhook(
	raw: string,
	header: string,
	secret: string,
	tolerance = STRIPE_TOLERANCE_SECONDS,
	now = Date.now(),
): Promise<unknown> {
	if (!raw) throw new Error("no webhook payload");
	if (!secret.trim()) throw new Error("no webhook secret");
	let timestamp = -1;
	const signatures: string[] = [];
	for (const item of header.split(",")) {
		const [k, v = ""] = item.split("=");
		if (k === "t") timestamp = /^\d+$/.test(v) ? Number(v) : -1;
		if (k === "v1") signatures.push(v);
	}
	if (timestamp < 0 || signatures.length === 0) throw new Error("no timestamp or no v1 signature");
	const expected = await hmacSha256Hex(secret, `${timestamp}.${raw}`);
	// Every signature is compared (no early exit), each in constant time.
	let found = false;
	for (const s of signatures) found = timingSafeEqual(expected, s) || found;
	if (!found) throw new Error("no signature matches");
	if (tolerance > 0 && Math.floor(now / 1000) - timestamp > tolerance) throw new Error("timestamp outside the tolerance");
	return JSON.parse(raw) as unknown;
}

/**
 * A subscription Checkout Session for the organization (the plan's monthly price, plus the metered
 * price when the plan bills usage and STRIPE_METERED_PRICE_ID is set); the webhook later moves its plan.
 */
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
		const session = await stripeRequest<{ id: string; url: string | null }>(config, "POST", "/v1/checkout/sessions", {
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
				// Usage-based billing: the metered price bills what the meter receives (no quantity for it).
				...(plan.meteredBilling && config.STRIPE_METERED_PRICE_ID ? [{ price: config.STRIPE_METERED_PRICE_ID }] : []),
			],
			metadata: { organizationId: input.organizationId, plan: plan.id },
			subscription_data: { metadata: { organizationId: input.organizationId, plan: plan.id } },
			success_url: input.successUrl,
			cancel_url: input.cancelUrl,
		});
		return { id: session.id, url: session.url ?? null };
	} catch (err) {
		throw stripeFailure(err, "the session", "BAD_REQUEST");
	}
}

/**
 * Settles an earlier Checkout Session of an organization: expires it while it is open, so it can no longer
 * be paid. Answers `live` with the subscription's id when it was paid and Stripe may still bill the
 * subscription it created (plans.ts mayStillBill: anything but canceled or incomplete_expired); `settled`
 * otherwise: expired now or before, or its subscription ended, which a new Checkout may replace.
 */
export async function settleCheckoutSession(config: Config, id: string): Promise<{ state: "settled" } | { state: "live"; subscriptionId: string | null }> {
	const path = `/v1/checkout/sessions/${encodeURIComponent(id)}`;
	try {
		await stripeRequest(config, "POST", `${path}/expire`);
		return { state: "settled" };
	} catch (err) {
		// Stripe refuses to expire a session that is not open: already expired, or complete.
		if (!isInvalidRequest(err)) throw stripeFailure(err, "");
	}
	// A session Stripe does not know (404) cannot be paid.
	try {
		const session = await stripeRequest<{ status?: string; subscription?: { id?: string; status?: string } | string | null }>(
			config,
			"GET",
			path,
			{ expand: ["subscription"] },
		);
		// Still open although expiring it was refused: it can be paid, so it is not settled (503, tried again next time).
		if (session.status === "open") throw new ApiError("UPSTREAM_UNAVAILABLE", "Stripe did not expire an earlier Checkout Session; try again");
		const sub = session.subscription;
		// Not expanded (unexpected): its state is unknown, so it counts as live.
		const status = typeof sub === "object" ? sub?.status : "active";
		if (session.status !== "complete" || !sub || !mayStillBill(status)) return { state: "settled" };
		return { state: "live", subscriptionId: (typeof sub === "object" ? sub?.id : sub) ?? null };
	} catch (err) {
		if (isInvalidRequest(err) && err.status === 404) return { state: "settled" };
		throw stripeFailure(err, "the earlier Checkout Session");
	}
}

/** A Stripe failure as a problem: Stripe's refusal is `refused` (409 by default) with its message, anything else a 503. */
function stripeFailure(err: unknown, what: string, refused: "CONFLICT" | "BAD_REQUEST" = "CONFLICT"): ApiError {
	if (isInvalidRequest(err)) return new ApiError(refused, `Stripe refused ${what}: ${err.message}`);
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
		const session = await stripeRequest<{ id: string; url: string }>(config, "POST", "/v1/billing_portal/sessions", {
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

/** The fields of a Stripe subscription read here. */
interface StripeSubscription {
	id: string;
	status: string;
	cancel_at_period_end?: boolean | null;
	cancel_at?: number | null;
	canceled_at?: number | null;
	trial_end?: number | null;
	/** Before API version 2025-03-31 only. */
	current_period_end?: number | null;
	items?: { data?: { current_period_end?: number | null }[] } | null;
}

function subscriptionState(sub: StripeSubscription): StripeSubscriptionState {
	// Since API version 2025-03-31 the period is on the items; earlier versions had it on the subscription.
	const legacy = sub.current_period_end;
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
 * until then) or right away (DELETE /v1/subscriptions/:id). The webhook then moves the plan. `final`
 * (right away only): a last invoice now for what is pending (metered usage reported this period), with
 * no proration credit for the unused time.
 */
export async function cancelStripeSubscription(
	config: Config,
	subscriptionId: string,
	atPeriodEnd: boolean,
	opts: { final?: boolean } = {},
): Promise<StripeSubscriptionState> {
	requireKey(config);
	const path = `/v1/subscriptions/${encodeURIComponent(subscriptionId)}`;
	try {
		const sub = atPeriodEnd
			? await stripeRequest<StripeSubscription>(config, "POST", path, { cancel_at_period_end: true })
			: await stripeRequest<StripeSubscription>(config, "DELETE", path, opts.final ? { invoice_now: true, prorate: false } : {});
		return subscriptionState(sub);
	} catch (err) {
		// A DELETE is retried once after a timeout or a 5xx, without an idempotency key (as Stripe's SDK does): when
		// the first attempt did cancel, the retry is refused. What counts is whether it is canceled now.
		if (!atPeriodEnd && isInvalidRequest(err)) {
			const now = await stripeRequest<StripeSubscription>(config, "GET", path).catch(() => null);
			if (now?.status === "canceled") return subscriptionState(now);
		}
		throw stripeFailure(err, "the cancellation");
	}
}

/**
 * A subscription's status as Stripe has it now (GET /v1/subscriptions/:id); "canceled" when Stripe does not
 * know it (404). For a subscription D1 still holds live whose period or grace ran out: its last webhook may
 * have been lost.
 */
export async function stripeSubscriptionStatus(config: Config, subscriptionId: string): Promise<string> {
	requireKey(config);
	try {
		const sub = await stripeRequest<{ status?: string }>(config, "GET", `/v1/subscriptions/${encodeURIComponent(subscriptionId)}`);
		return sub.status ?? "canceled";
	} catch (err) {
		if (isInvalidRequest(err) && err.status === 404) return "canceled";
		throw stripeFailure(err, "the subscription");
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

/** The fields of a Stripe invoice read here. */
interface StripeInvoice {
	id?: string;
	number?: string | null;
	status?: string | null;
	currency: string;
	total: number;
	amount_due: number;
	amount_paid: number;
	created: number;
	period_start: number;
	period_end: number;
	hosted_invoice_url?: string | null;
	invoice_pdf?: string | null;
	/** Since API version 2025-03-31. */
	parent?: { subscription_details?: { subscription?: string | { id: string } | null } | null } | null;
	/** Before API version 2025-03-31. */
	subscription?: string | { id: string } | null;
}

function invoiceView(inv: StripeInvoice): InvoiceView {
	const parentSub = inv.parent?.subscription_details?.subscription;
	const legacySub = inv.subscription;
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
		const page = await stripeRequest<{ data: StripeInvoice[]; has_more: boolean }>(config, "GET", "/v1/invoices", {
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

/** One usage report for a Billing Meter: `value` more units for the customer, deduplicated by `identifier`. */
interface MeterEventInput {
	eventName: string;
	customerId: string;
	value: number;
	/** Unique per report (Stripe keeps identifiers for at least 24 hours and refuses a second event with one). */
	identifier: string;
	/** When the usage happened, in seconds (Stripe takes the past 35 days up to 5 minutes ahead). */
	timestamp: number;
}

/**
 * Reports usage to a Billing Meter (POST /v1/billing/meter_events; the meter's default payload keys
 * stripe_customer_id and value). The identifier deduplicates across attempts: Stripe refusing an
 * identifier it already holds means the event was recorded before, which counts as delivered. (Not the
 * Idempotency-Key: Stripe replays a key's first answer for 24 hours, a 500 included.)
 * Answers "recorded" or "duplicate"; throws a 409 problem for another refusal and a 503 otherwise.
 */
export async function reportMeterEvent(config: Config, input: MeterEventInput): Promise<"recorded" | "duplicate"> {
	requireKey(config);
	try {
		await stripeRequest(config, "POST", "/v1/billing/meter_events", {
			event_name: input.eventName,
			payload: { stripe_customer_id: input.customerId, value: String(input.value) },
			identifier: input.identifier,
			timestamp: input.timestamp,
		});
		return "recorded";
	} catch (err) {
		if (isInvalidRequest(err) && /already exists with identifier/i.test(err.message)) return "duplicate";
		throw stripeFailure(err, "the meter event");
	}
}
