import { createRoute, z } from "@hono/zod-openapi";
import { rateLimit } from "../../middleware/rate-limit";
import { commonErrors, jsonContent, problem } from "../../openapi";

export const WebhookAccepted = z.object({ status: z.literal("queued"), svixId: z.string() }).openapi("WebhookAccepted");

export const clerkWebhook = createRoute({
	method: "post",
	path: "/api/webhooks/clerk",
	tags: ["webhooks"],
	summary: "Clerk (Svix / Standard Webhooks signed) webhook",
	description:
		"Verifies svix-id / svix-timestamp / svix-signature (or the Standard Webhooks names webhook-id / " +
		"webhook-timestamp / webhook-signature) over the raw body bytes (5 min tolerance), then queues the event. " +
		"The signature is checked first: correctly signed requests are never limited by IP; unsigned or badly " +
		"signed ones spend the per-IP budget (429 past it). 202 only once the queue accepted the event; 503 " +
		"otherwise so Clerk retries. Body cap 96 KiB, and 413 when the queued message would exceed the queue's 128 KB.",
	request: {
		headers: z.object({
			"svix-id": z.string().optional(),
			"svix-timestamp": z.string().optional(),
			"svix-signature": z.string().optional(),
			"webhook-id": z.string().optional(),
			"webhook-timestamp": z.string().optional(),
			"webhook-signature": z.string().optional(),
		}),
	},
	responses: {
		202: jsonContent(WebhookAccepted, "Verified and durably queued"),
		...commonErrors,
		401: problem("Signature invalid, stale or from the future"),
		413: problem("Body over the cap, or too large for a queue message once encoded"),
		503: problem("Queue unavailable; the sender should retry"),
	},
});

export const razorpayWebhook = createRoute({
	method: "post",
	path: "/api/webhooks/razorpay",
	tags: ["webhooks"],
	summary: "Razorpay webhook (payment.captured, payment.failed, order.paid)",
	description:
		"X-Razorpay-Signature = HMAC-SHA256 of the raw body with RAZORPAY_WEBHOOK_SECRET; idempotent on X-Razorpay-Event-Id.",
	middleware: [rateLimit("public")],
	responses: {
		202: jsonContent(WebhookAccepted, "Verified and durably queued"),
		...commonErrors,
		401: problem("Signature invalid"),
		503: problem("Queue unavailable; the sender should retry"),
	},
});

export const stripeWebhook = createRoute({
	method: "post",
	path: "/api/webhooks/stripe",
	tags: ["webhooks"],
	summary: "Stripe webhook (subscriptions and invoices)",
	description:
		"Stripe-Signature verified with constructEventAsync and SubtleCrypto, 300 s tolerance; idempotent on the event id.",
	middleware: [rateLimit("public")],
	responses: {
		202: jsonContent(WebhookAccepted, "Verified and durably queued"),
		...commonErrors,
		401: problem("Signature invalid or stale"),
		503: problem("Queue unavailable; the sender should retry"),
	},
});
