import { ApiError } from "../errors";
import { hmacSha256Hex, timingSafeEqual } from "../lib/crypto";

/**
 * Largest order amount accepted, in the currency's smallest unit: 1,000,000,000 (10 crore paise =
 * INR 1 crore, USD 10 million in cents). Razorpay's own per-payment ceiling is far lower (set per
 * account), and the bound is far below Number.MAX_SAFE_INTEGER (2^53 - 1), so every amount we store,
 * compare or sum stays an exact integer.
 */
export const MAX_ORDER_AMOUNT = 1_000_000_000;

interface RazorpayOrder {
	id: string;
	entity: "order";
	amount: number;
	currency: string;
	receipt: string | null;
	status: string;
}

/**
 * Creates an order through Razorpay's Orders API (amount in the smallest unit). A 4xx from Razorpay
 * is the caller's input (400 with Razorpay's description); anything else is a 503. `apiBase` is
 * RAZORPAY_API_BASE (the real API by default; a proxy or a local fake otherwise).
 */
export async function createRazorpayOrder(
	creds: { keyId: string; keySecret: string; apiBase: string },
	input: { amount: number; currency: string; receipt: string; notes?: Record<string, string> },
): Promise<RazorpayOrder> {
	let res: Response;
	try {
		res = await fetch(`${creds.apiBase}/v1/orders`, {
			method: "POST",
			headers: { authorization: `Basic ${btoa(`${creds.keyId}:${creds.keySecret}`)}`, "content-type": "application/json" },
			body: JSON.stringify(input),
			signal: AbortSignal.timeout(10_000),
		});
	} catch {
		throw new ApiError("UPSTREAM_UNAVAILABLE", "Razorpay could not be reached");
	}
	const body = (await res.json().catch(() => null)) as (RazorpayOrder & { error?: { description?: string } }) | null;
	if (res.status >= 400 && res.status < 500 && res.status !== 401 && res.status !== 429) {
		throw new ApiError("BAD_REQUEST", `Razorpay refused the order: ${body?.error?.description ?? res.status}`);
	}
	if (!res.ok || !body || typeof body.id !== "string") {
		throw new ApiError("UPSTREAM_UNAVAILABLE", `Razorpay answered ${res.status}`);
	}
	return body;
}

/** Checkout signature: HMAC-SHA256("<order id>|<payment id>", key secret), hex, compared in constant time. */
export async function verifyPaymentSignature(keySecret: string, orderId: string, paymentId: string, signature: string) {
	return timingSafeEqual(await hmacSha256Hex(keySecret, `${orderId}|${paymentId}`), signature.trim().toLowerCase());
}

/** Webhook signature: X-Razorpay-Signature = HMAC-SHA256(raw body, webhook secret), hex. */
export async function verifyWebhookSignature(webhookSecret: string, rawBody: string, signature: string) {
	return timingSafeEqual(await hmacSha256Hex(webhookSecret, rawBody), signature.trim().toLowerCase());
}
