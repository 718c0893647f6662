import { createRoute, z } from "@hono/zod-openapi";
import { rateLimit } from "../../middleware/rate-limit";
import { commonErrors, jsonContent, problem } from "../../openapi";

export const WebhookAccepted = z.object({ status: z.literal("queued"), svixId: z.string() }).openapi("WebhookAccepted");

export const clerkWebhook = createRoute({
	method: "post",
	path: "/api/webhooks/clerk",
	tags: ["webhooks"],
	summary: "Clerk (Svix-signed) webhook",
	middleware: [rateLimit("public")],
	description:
		"Verifies svix-id / svix-timestamp / svix-signature over the raw body (5 min tolerance), then queues the event. " +
		"202 only once the queue accepted it; 503 otherwise so Clerk retries. Body cap 96 KiB.",
	request: {
		headers: z.object({
			"svix-id": z.string().optional(),
			"svix-timestamp": z.string().optional(),
			"svix-signature": z.string().optional(),
		}),
	},
	responses: {
		202: jsonContent(WebhookAccepted, "Verified and durably queued"),
		...commonErrors,
		401: problem("Signature missing, invalid, stale or from the future"),
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
