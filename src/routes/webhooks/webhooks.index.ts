import type { Context } from "hono";
import type Stripe from "stripe";
import { Webhook } from "svix";
import { createRouter } from "../../app";
import type { AppEnv } from "../../env";
import { ApiError, fieldErrors } from "../../errors";
import { sha256Hex } from "../../lib/crypto";
import { ClerkEnvelopeSchema, type WebhookMessage } from "../../queue/messages";
import { verifyWebhookSignature } from "../../services/razorpay";
import { STRIPE_TOLERANCE_SECONDS, stripeClient, stripeCrypto, stripeEventEnvelope } from "../../services/stripe";
import * as routes from "./webhooks.routes";

/**
 * A Queues message holds at most 128 KB; the body travels inside one, so it is capped below that.
 * Clerk's payloads are a few KB (metadata fields are capped at 8 KB each).
 */
const MAX_WEBHOOK_BYTES = 96 * 1024;

const MAX_QUEUE_MESSAGE_CHARS = 120_000;

const SIGNATURE_CHALLENGE = { "WWW-Authenticate": 'Bearer error="invalid_token"' };

// One svix verifier per secret; constructing it decodes the key.
const verifiers = new Map<string, Webhook>();

async function readCapped(req: Request): Promise<string> {
	const declared = Number(req.headers.get("content-length") ?? "0");
	if (declared > MAX_WEBHOOK_BYTES) throw tooLarge();
	const buf = await req.arrayBuffer();
	if (buf.byteLength > MAX_WEBHOOK_BYTES) throw tooLarge();
	try {
		return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(buf);
	} catch {
		throw new ApiError("BAD_REQUEST", "body is not UTF-8");
	}
}

const tooLarge = () => new ApiError("PAYLOAD_TOO_LARGE", `body exceeds ${MAX_WEBHOOK_BYTES} bytes`);

/** Puts a verified event on the queue; only a successful send may be answered with 2xx. */
async function enqueue(c: Context<AppEnv>, message: WebhookMessage): Promise<void> {
	// JSON escaping can grow the body; refuse what the queue would refuse, before trying.
	if (JSON.stringify(message).length > MAX_QUEUE_MESSAGE_CHARS) throw tooLarge();
	try {
		await c.env.WEBHOOK_QUEUE.send(message, { contentType: "json" });
	} catch (err) {
		c.get("logger").error("queue send failed", {
			source: message.source,
			id: message.svixId,
			error: err instanceof Error ? err.message : String(err),
		});
		throw new ApiError("UPSTREAM_UNAVAILABLE", "event could not be queued, retry later", { headers: { "Retry-After": "10" } });
	}
}

function parseJson(raw: string): Record<string, unknown> {
	try {
		const v = JSON.parse(raw);
		if (typeof v === "object" && v !== null && !Array.isArray(v)) return v;
	} catch {
		// fall through
	}
	throw new ApiError("BAD_REQUEST", "body is not a JSON object");
}

export const webhooksRouter = createRouter()
	.openapi(routes.clerkWebhook, async (c) => {
		const secret = c.get("config").CLERK_WEBHOOK_SECRET;
		if (!secret) throw new ApiError("BAD_ENVIRONMENT", "CLERK_WEBHOOK_SECRET is not configured");

		const svixId = c.req.header("svix-id");
		const svixTimestamp = c.req.header("svix-timestamp");
		const svixSignature = c.req.header("svix-signature");
		const missing = [
			["svix-id", svixId],
			["svix-timestamp", svixTimestamp],
			["svix-signature", svixSignature],
		].filter(([, v]) => !v);
		if (missing.length > 0) {
			throw new ApiError("BAD_REQUEST", `missing header ${missing.map(([k]) => k).join(", ")}`, {
				errors: missing.map(([k]) => ({ path: `headers.${k}`, message: "required" })),
			});
		}
		const raw = await readCapped(c.req.raw);

		let wh = verifiers.get(secret);
		if (!wh) {
			wh = new Webhook(secret);
			verifiers.set(secret, wh);
		}
		try {
			// svix 2.x: returns nothing, throws on a bad or stale/future signature (5 min either way).
			wh.verify(raw, { "svix-id": svixId, "svix-timestamp": svixTimestamp, "svix-signature": svixSignature } as Record<
				string,
				string
			>);
		} catch {
			throw new ApiError("INVALID_TOKEN", "webhook signature could not be verified", { headers: SIGNATURE_CHALLENGE });
		}

		const envelope = ClerkEnvelopeSchema.safeParse(parseJson(raw));
		if (!envelope.success) {
			throw new ApiError("VALIDATION_FAILED", "body is not a Clerk event envelope", { errors: fieldErrors(envelope.error.issues) });
		}

		await enqueue(c, {
			source: "clerk",
			svixId: svixId as string,
			type: envelope.data.type,
			timestamp: envelope.data.timestamp ?? Number(svixTimestamp) * 1000,
			receivedAt: Date.now(),
			body: raw,
		});
		return c.json({ status: "queued" as const, svixId: svixId as string }, 202);
	})

	.openapi(routes.razorpayWebhook, async (c) => {
		const secret = c.get("config").RAZORPAY_WEBHOOK_SECRET;
		if (!secret) throw new ApiError("BAD_ENVIRONMENT", "RAZORPAY_WEBHOOK_SECRET is not configured");
		const signature = c.req.header("x-razorpay-signature");
		if (!signature) throw new ApiError("BAD_REQUEST", "missing header x-razorpay-signature");
		const raw = await readCapped(c.req.raw);
		if (!(await verifyWebhookSignature(secret, raw, signature))) {
			throw new ApiError("INVALID_TOKEN", "webhook signature could not be verified", { headers: SIGNATURE_CHALLENGE });
		}
		const event = parseJson(raw);
		const type = typeof event.event === "string" ? event.event : "";
		if (!type)
			throw new ApiError("VALIDATION_FAILED", "body has no event type", { errors: [{ path: "event", message: "required" }] });
		// Razorpay's event id is the idempotency key; without one, the body's hash stands in.
		const id = c.req.header("x-razorpay-event-id") ?? `rzp_${await sha256Hex(raw)}`;
		const created = typeof event.created_at === "number" ? event.created_at * 1000 : Date.now();
		await enqueue(c, { source: "razorpay", svixId: id, type, timestamp: created, receivedAt: Date.now(), body: raw });
		return c.json({ status: "queued" as const, svixId: id }, 202);
	})
	.openapi(routes.stripeWebhook, async (c) => {
		const config = c.get("config");
		if (!config.STRIPE_WEBHOOK_SECRET) throw new ApiError("BAD_ENVIRONMENT", "STRIPE_WEBHOOK_SECRET is not configured");
		const signature = c.req.header("stripe-signature");
		if (!signature) throw new ApiError("BAD_REQUEST", "missing header stripe-signature");
		const raw = await readCapped(c.req.raw);
		let event: Stripe.Event;
		try {
			event = await stripeClient(config).webhooks.constructEventAsync(
				raw,
				signature,
				config.STRIPE_WEBHOOK_SECRET,
				STRIPE_TOLERANCE_SECONDS,
				stripeCrypto,
			);
		} catch {
			throw new ApiError("INVALID_TOKEN", "webhook signature could not be verified", { headers: SIGNATURE_CHALLENGE });
		}
		const { id, type, created } = stripeEventEnvelope(event);
		await enqueue(c, { source: "stripe", svixId: id, type, timestamp: created * 1000, receivedAt: Date.now(), body: raw });
		return c.json({ status: "queued" as const, svixId: id }, 202);
	});
