import type { Context } from "hono";
import { createRouter } from "../../lib/create-app";
import type { AppEnv } from "../../env";
import { ApiError, fieldErrors } from "../../errors";
import { sha256Hex } from "../../lib/crypto";
import { traceparentOf } from "../../lib/trace";
import { INVALID_DETAIL } from "../../middleware/auth";
import { ClerkEnvelopeSchema, type WebhookMessage, WebhookMessageSchema } from "../../queue/messages";
import { ms } from "../../services/clerk-sync/shared";
import { verifyWebhookSignature } from "../../services/razorpay";
import { stripeEventEnvelope, verifyStripeWebhook } from "../../services/stripe";
import { isTimestamp, signatureHeaders, verifySignature } from "./signature";
import { refuseUnverified, SIGNATURE_MISSING } from "./unverified";
import * as routes from "./webhooks.routes";

/**
 * Raw body cap. Clerk's payloads are a few KB (metadata fields are capped at 8 KB each); the body
 * travels inside one queue message, whose own cap (below) is checked on the message as it is sent.
 */
const MAX_WEBHOOK_BYTES = 96 * 1024;

/**
 * A Queues message holds 128 KB (128,000 bytes) of its JSON encoding. JSON escaping grows a body
 * (a quote becomes two bytes, control characters six) and non-ASCII counts in UTF-8 bytes, so the
 * message is measured in bytes as it will be sent, with a margin for the queue's own framing.
 */
const MAX_QUEUE_MESSAGE_BYTES = 126_000;

const SIGNATURE_CHALLENGE = { "WWW-Authenticate": 'Bearer error="invalid_token"' };

/**
 * The body's bytes, capped: 413 from the declared length when there is one, else as soon as the bytes
 * read pass the cap (a chunked body is never held whole: the stream is cancelled there). A media type
 * other than `application/json` (parameters aside: every provider sends that) is a 415; none at all is taken as JSON.
 */
async function readCappedBytes(req: Request): Promise<Uint8Array> {
	const type = req.headers.get("content-type");
	if (type !== null && !/^application\/json\s*(;|$)/i.test(type.trim())) {
		throw new ApiError("UNSUPPORTED_MEDIA_TYPE", "a webhook body is JSON: send it with Content-Type: application/json");
	}
	const declared = Number(req.headers.get("content-length") ?? "0");
	if (declared > MAX_WEBHOOK_BYTES) throw tooLarge();
	if (!req.body) return new Uint8Array(0);
	const reader = req.body.getReader();
	const chunks: Uint8Array[] = [];
	let size = 0;
	for (;;) {
		const { done, value } = await reader.read();
		if (done) break;
		size += value.byteLength;
		if (size > MAX_WEBHOOK_BYTES) {
			await reader.cancel().catch(() => undefined);
			throw tooLarge();
		}
		chunks.push(value);
	}
	if (chunks.length === 1) return chunks[0] as Uint8Array;
	const bytes = new Uint8Array(size);
	let at = 0;
	for (const chunk of chunks) {
		bytes.set(chunk, at);
		at += chunk.byteLength;
	}
	return bytes;
}

/** UTF-8 text of the body; a leading BOM (covered by the signature, since that is over the bytes) is dropped. */
function decodeUtf8(bytes: Uint8Array): string {
	try {
		return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
	} catch {
		throw new ApiError("BAD_REQUEST", "body is not UTF-8");
	}
}

/**
 * `work` on the body before its signature is checked: a body it refuses (not JSON, over the cap, not UTF-8) is a
 * request whose signature never verified, so it spends a token of the per-IP budget as any other (unverified.ts).
 */
async function beforeVerified<T>(c: Context<AppEnv>, work: () => T | Promise<T>): Promise<T> {
	try {
		return await work();
	} catch (err) {
		if (err instanceof ApiError) return refuseUnverified(c, err);
		throw err;
	}
}

const unverifiedBytes = (c: Context<AppEnv>) => beforeVerified(c, () => readCappedBytes(c.req.raw));

/** The body as text before its signature is checked (beforeVerified). */
async function unverifiedText(c: Context<AppEnv>): Promise<string> {
	const bytes = await unverifiedBytes(c);
	return beforeVerified(c, () => decodeUtf8(bytes));
}

const tooLarge = () => new ApiError("PAYLOAD_TOO_LARGE", `body exceeds ${MAX_WEBHOOK_BYTES} bytes`);

/**
 * Puts a verified event on the queue; only a successful send may be answered with 2xx. What the
 * consumer would drop as unreadable (ids or types too long, a timestamp that is not a non-negative
 * integer) is refused here with 400, and what the queue would refuse with 413, so a 202 always
 * means the event will be processed or visibly fail. The message carries the request's `traceparent`.
 */
async function enqueue(c: Context<AppEnv>, event: Omit<WebhookMessage, "traceparent">): Promise<void> {
	// The consumer continues this request's trace (queue/webhooks/batch.ts).
	const message: WebhookMessage = { ...event, traceparent: traceparentOf(c.get("trace")) };
	const valid = WebhookMessageSchema.safeParse(message);
	if (!valid.success) {
		throw new ApiError("VALIDATION_FAILED", "event cannot be accepted", {
			errors: fieldErrors(valid.error.issues).map((e) => ({ ...e, path: MESSAGE_FIELDS[e.path] ?? e.path })),
		});
	}
	const bytes = new TextEncoder().encode(JSON.stringify(message)).byteLength;
	if (bytes > MAX_QUEUE_MESSAGE_BYTES) {
		throw new ApiError("PAYLOAD_TOO_LARGE", `event is ${bytes} bytes once queued; the limit is ${MAX_QUEUE_MESSAGE_BYTES}`);
	}
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
	c.get("logger").info("webhook event queued", { source: message.source, svixId: message.svixId, type: message.type });
}

/** Where a refused message field came from, for the client. */
const MESSAGE_FIELDS: Record<string, string> = { svixId: "headers.svix-id", type: "body.type", timestamp: "body.timestamp" };

function parseJson(raw: string): Record<string, unknown> {
	try {
		const v = JSON.parse(raw);
		if (typeof v === "object" && v !== null && !Array.isArray(v)) return v;
	} catch {
		// fall through
	}
	throw new ApiError("BAD_REQUEST", "body is not a JSON object");
}

/**
 * A signature that did not verify (bad, stale or from the future): the one generic detail of every 401 for a
 * presented credential (a webhook's credential is its signature), so the answer does not say which check failed.
 */
const badSignature = () => new ApiError("INVALID_TOKEN", INVALID_DETAIL, { headers: SIGNATURE_CHALLENGE });

export const webhooksRouter = createRouter()
	.openapi(routes.clerkWebhook, async (c) => {
		const secret = c.get("config").CLERK_WEBHOOK_SECRET;
		if (!secret) throw new ApiError("BAD_ENVIRONMENT", "CLERK_WEBHOOK_SECRET is not configured");

		// The signature is checked before any rate limit: correctly signed deliveries are never limited by IP (unverified.ts).
		if (!c.req.header("svix-signature") && !c.req.header("webhook-signature")) {
			return refuseUnverified(
				c,
				new ApiError("UNAUTHORIZED", "a webhook signature (svix-signature or webhook-signature) is required", {
					headers: SIGNATURE_MISSING,
				}),
			);
		}
		const found = signatureHeaders((name) => c.req.header(name));
		if (!found.headers) {
			return refuseUnverified(
				c,
				new ApiError("BAD_REQUEST", `missing header ${found.missing.join(", ")}`, {
					errors: found.missing.map((k) => ({ path: `headers.${k}`, message: "required" })),
				}),
			);
		}
		const h = found.headers;
		if (!isTimestamp(h.timestamp)) {
			return refuseUnverified(
				c,
				new ApiError("BAD_REQUEST", "signature timestamp is not a positive integer of seconds", {
					errors: [
						{
							path: c.req.header("svix-timestamp") ? "headers.svix-timestamp" : "headers.webhook-timestamp",
							message: "must be a positive integer",
						},
					],
				}),
			);
		}
		const bytes = await unverifiedBytes(c);
		// Over the exact bytes received (a BOM or any re-encoding would change them).
		if (!(await verifySignature(secret, h, bytes))) {
			return refuseUnverified(c, badSignature());
		}
		const raw = decodeUtf8(bytes);

		const envelope = ClerkEnvelopeSchema.safeParse(parseJson(raw));
		if (!envelope.success) {
			throw new ApiError("VALIDATION_FAILED", "body is not a Clerk event envelope", { errors: fieldErrors(envelope.error.issues) });
		}

		await enqueue(c, {
			source: "clerk",
			svixId: h.id,
			type: envelope.data.type,
			// Clerk's envelope time is in ms; one in seconds is read as seconds.
			timestamp: ms(envelope.data.timestamp ?? null) ?? Number(h.timestamp) * 1000,
			receivedAt: Date.now(),
			body: raw,
		});
		return c.json({ status: "queued" as const, svixId: h.id }, 202);
	})

	.openapi(routes.razorpayWebhook, async (c) => {
		const secret = c.get("config").RAZORPAY_WEBHOOK_SECRET;
		if (!secret) throw new ApiError("BAD_ENVIRONMENT", "RAZORPAY_WEBHOOK_SECRET is not configured");
		// Present: requireSignatureHeader answered 401 without it.
		const signature = c.req.valid("header")["x-razorpay-signature"];
		const raw = await unverifiedText(c);
		if (!(await verifyWebhookSignature(secret, raw, signature))) {
			return refuseUnverified(c, badSignature());
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
		// Present: requireSignatureHeader answered 401 without it.
		const signature = c.req.valid("header")["stripe-signature"];
		const raw = await unverifiedText(c);
		let event: unknown;
		try {
			event = await verifyStripeWebhook(raw, signature, config.STRIPE_WEBHOOK_SECRET);
		} catch (err) {
			// Signed, but not JSON: bad input (400), not a bad signature.
			if (err instanceof SyntaxError) throw new ApiError("VALIDATION_FAILED", "the body is not JSON");
			return refuseUnverified(c, badSignature());
		}
		const { id, type, created } = stripeEventEnvelope(event);
		await enqueue(c, { source: "stripe", svixId: id, type, timestamp: created * 1000, receivedAt: Date.now(), body: raw });
		return c.json({ status: "queued" as const, svixId: id }, 202);
	});
