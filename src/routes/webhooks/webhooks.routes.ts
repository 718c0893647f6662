import { createRoute, z } from "@hono/zod-openapi";
import { commonErrors, jsonContent, problem, rateLimitHeaders } from "../../openapi";
import { requireSignatureHeader } from "./unverified";

/**
 * The JSON bodies senders post, documented as plain JSON Schema: the handlers verify the signature over
 * the raw bytes first and then read the body themselves, so no validator may consume it before them.
 */
const eventBody = (description: string, schema: Record<string, unknown>) => ({
	required: true,
	description,
	content: { "application/json": { schema } },
});

const ClerkEventBody = eventBody("A Clerk (Svix) event envelope", {
	type: "object",
	required: ["type", "data"],
	properties: {
		type: { type: "string", minLength: 1, examples: ["user.created"] },
		data: { type: "object", additionalProperties: true, description: OPENAPI_TEXT ? "The Clerk object the event is about" : undefined },
		object: { type: "string", enum: ["event"] },
		timestamp: { type: "integer", minimum: 1, description: OPENAPI_TEXT ? "Event time in ms (seconds accepted)" : undefined },
		instance_id: { type: "string" },
	},
	additionalProperties: true,
});

const RazorpayEventBody = eventBody("A Razorpay webhook event", {
	type: "object",
	required: ["event"],
	properties: {
		event: { type: "string", minLength: 1, examples: ["payment.captured"] },
		payload: { type: "object", additionalProperties: true },
		created_at: { type: "integer", description: OPENAPI_TEXT ? "Seconds since the epoch" : undefined },
	},
	additionalProperties: true,
});

const StripeEventBody = eventBody("A Stripe Event object", {
	type: "object",
	required: ["id", "type", "created"],
	properties: {
		id: { type: "string", minLength: 1, maxLength: 255, examples: ["evt_1"] },
		type: { type: "string", minLength: 1, maxLength: 255, examples: ["invoice.paid"] },
		created: { type: "integer", minimum: 1, description: OPENAPI_TEXT ? "Seconds since the epoch" : undefined },
		data: { type: "object", additionalProperties: true },
	},
	additionalProperties: true,
});

const svixHeader = (set: string, name: string) =>
	z
		.string()
		.optional()
		.openapi({ description: OPENAPI_TEXT ? `${name} of the ${set} signature headers: required with that set's signature, whose scheme names the set in use` : undefined });

/** Either signature set: a literal of two differently keyed objects would not type as security requirements. */
const clerkSecurity: Record<string, string[]>[] = [{ clerkSvix: [] }, { clerkStandardWebhooks: [] }];

export const WebhookAccepted = z.object({ status: z.literal("queued"), svixId: z.string() }).openapi("WebhookAccepted");

export const clerkWebhook = createRoute({
	method: "post",
	path: "/api/webhooks/clerk",
	tags: ["webhooks"],
	summary: OPENAPI_TEXT ? "Clerk (Svix / Standard Webhooks signed) webhook" : undefined,
	description:
		OPENAPI_TEXT ? "Verifies svix-id / svix-timestamp / svix-signature (or the Standard Webhooks names webhook-id / " +
		"webhook-timestamp / webhook-signature) over the raw body bytes (5 min tolerance), then queues the event. " +
		"Only unsigned or badly signed requests spend the per-IP budget (429 past it). 202 only once the queue " +
		"accepted the event, else 503. Body cap 96 KiB, and 413 when the queued message would exceed the queue's 128 KB." : undefined,
	// Either header set is accepted (svix-* wins when any of it is sent), so each is optional here; the
	// two security schemes say one signature set is required. No signature at all answers 401, an
	// incomplete set 400, each after the request spent a token of the per-IP budget, which a header
	// validator would skip.
	security: clerkSecurity,
	request: {
		headers: z.object({
			"svix-id": svixHeader("svix-*", "Message id"),
			"svix-timestamp": svixHeader("svix-*", "Seconds since the epoch"),
			"webhook-id": svixHeader("webhook-* (Standard Webhooks)", "Message id"),
			"webhook-timestamp": svixHeader("webhook-* (Standard Webhooks)", "Seconds since the epoch"),
		}),
		body: ClerkEventBody,
	},
	responses: {
		202: jsonContent(WebhookAccepted, "Verified and durably queued"),
		...commonErrors,
		// Only requests whose signature did not verify spend the per-IP budget, so only these carry RateLimit-*.
		400: {
			...problem("Bad request: the signature's id or timestamp header missing or malformed, or not a Clerk event"),
			headers: rateLimitHeaders(),
		},
		401: {
			...problem("No signature (WWW-Authenticate: Bearer), or one that is invalid, stale or from the future"),
			headers: rateLimitHeaders(),
		},
		429: { ...problem("Too many unverified requests from this IP (Retry-After)"), headers: rateLimitHeaders() },
		// Over the cap before its signature is checked: it spent a token (RateLimit-*); too large once queued: none.
		413: { ...problem("Body over the cap, or too large for a queue message once encoded"), headers: rateLimitHeaders() },
		415: { ...problem("A Content-Type other than JSON (refused before the signature is checked)"), headers: rateLimitHeaders() },
		503: problem("Queue unavailable; the sender should retry"),
	},
});

export const razorpayWebhook = createRoute({
	method: "post",
	path: "/api/webhooks/razorpay",
	tags: ["webhooks"],
	summary: OPENAPI_TEXT ? "Razorpay webhook (payment.captured, payment.failed, order.paid, refund.processed)" : undefined,
	description:
		OPENAPI_TEXT ? "X-Razorpay-Signature = HMAC-SHA256 of the raw body with RAZORPAY_WEBHOOK_SECRET; idempotent on X-Razorpay-Event-Id. " +
		"Only unsigned or badly signed requests spend the per-IP budget (429 past it)." : undefined,
	middleware: [requireSignatureHeader("x-razorpay-signature")],
	security: [{ razorpaySignature: [] }],
	request: {
		headers: z.object({
			"x-razorpay-signature": z
				.string()
				.min(1)
				.openapi({ description: OPENAPI_TEXT ? "Hex HMAC-SHA256 of the raw body (the razorpaySignature scheme)" : undefined }),
			"x-razorpay-event-id": z
				.string()
				.optional()
				.openapi({ description: OPENAPI_TEXT ? "Idempotency key of the delivery; without it, the body's hash stands in" : undefined }),
		}),
		body: RazorpayEventBody,
	},
	responses: {
		202: jsonContent(WebhookAccepted, "Verified and durably queued"),
		...commonErrors,
		// Only requests whose signature did not verify spend the per-IP budget, so only these carry RateLimit-*.
		401: { ...problem("Signature missing (WWW-Authenticate: Bearer) or invalid"), headers: rateLimitHeaders() },
		429: { ...problem("Too many unverified requests from this IP (Retry-After)"), headers: rateLimitHeaders() },
		400: { ...problem("Bad request: the body is not UTF-8 (before its signature is checked), or not the event it should be"), headers: rateLimitHeaders() },
		413: { ...problem("Body over the cap"), headers: rateLimitHeaders() },
		415: { ...problem("A Content-Type other than JSON (refused before the signature is checked)"), headers: rateLimitHeaders() },
		503: problem("Queue unavailable; the sender should retry"),
	},
});

export const stripeWebhook = createRoute({
	method: "post",
	path: "/api/webhooks/stripe",
	tags: ["webhooks"],
	summary: OPENAPI_TEXT ? "Stripe webhook (subscriptions and invoices)" : undefined,
	description:
		OPENAPI_TEXT ? "Stripe-Signature verified with constructEventAsync and SubtleCrypto, 300 s tolerance; idempotent on the event id. " +
		"Only unsigned or badly signed requests spend the per-IP budget (429 past it)." : undefined,
	middleware: [requireSignatureHeader("stripe-signature")],
	security: [{ stripeSignature: [] }],
	request: {
		headers: z.object({
			"stripe-signature": z
				.string()
				.min(1)
				.openapi({ description: OPENAPI_TEXT ? "`t=<seconds>,v1=<hex>` (the stripeSignature scheme)" : undefined }),
		}),
		body: StripeEventBody,
	},
	responses: {
		202: jsonContent(WebhookAccepted, "Verified and durably queued"),
		...commonErrors,
		// Only requests whose signature did not verify spend the per-IP budget, so only these carry RateLimit-*.
		401: { ...problem("Signature missing (WWW-Authenticate: Bearer), invalid or stale"), headers: rateLimitHeaders() },
		429: { ...problem("Too many unverified requests from this IP (Retry-After)"), headers: rateLimitHeaders() },
		400: { ...problem("Bad request: the body is not UTF-8 (before its signature is checked), or not the event it should be"), headers: rateLimitHeaders() },
		413: { ...problem("Body over the cap"), headers: rateLimitHeaders() },
		415: { ...problem("A Content-Type other than JSON (refused before the signature is checked)"), headers: rateLimitHeaders() },
		503: problem("Queue unavailable; the sender should retry"),
	},
});
