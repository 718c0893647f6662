import { Webhook } from "svix";
import { createRouter } from "../../app";
import { ApiError } from "../../errors";
import { ClerkEnvelopeSchema, type WebhookMessage } from "../../queue/messages";
import * as routes from "./webhooks.routes";

/**
 * A Queues message holds at most 128 KB; the body travels inside one, so it is capped below that.
 * Clerk's payloads are a few KB (metadata fields are capped at 8 KB each).
 */
export const MAX_WEBHOOK_BYTES = 96 * 1024;

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

export const webhooksRouter = createRouter().openapi(routes.clerkWebhook, async (c) => {
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
		wh.verify(raw, { "svix-id": svixId, "svix-timestamp": svixTimestamp, "svix-signature": svixSignature } as Record<string, string>);
	} catch {
		throw new ApiError("INVALID_TOKEN", "webhook signature could not be verified", { headers: SIGNATURE_CHALLENGE });
	}

	let json: unknown;
	try {
		json = JSON.parse(raw);
	} catch {
		throw new ApiError("BAD_REQUEST", "body is not JSON");
	}
	const envelope = ClerkEnvelopeSchema.safeParse(json);
	if (!envelope.success) {
		throw new ApiError("VALIDATION_FAILED", "body is not a Clerk event envelope", {
			errors: envelope.error.issues.map((i) => ({ path: i.path.join(".") || "(root)", message: i.message })),
		});
	}

	const message: WebhookMessage = {
		source: "clerk",
		svixId: svixId as string,
		type: envelope.data.type,
		timestamp: envelope.data.timestamp ?? Number(svixTimestamp) * 1000,
		receivedAt: Date.now(),
		body: raw,
	};
	// JSON escaping can grow the body; refuse what the queue would refuse, before trying.
	if (JSON.stringify(message).length > MAX_QUEUE_MESSAGE_CHARS) throw tooLarge();
	try {
		await c.env.WEBHOOK_QUEUE.send(message, { contentType: "json" });
	} catch (err) {
		c.get("logger").error("queue send failed", { svixId, error: err instanceof Error ? err.message : String(err) });
		throw new ApiError("UPSTREAM_UNAVAILABLE", "event could not be queued, retry later", { headers: { "Retry-After": "10" } });
	}
	return c.json({ status: "queued" as const, svixId: svixId as string }, 202);
});
