import { z } from "zod";

/** What the webhook routes put on the queue: the verified raw body plus its delivery metadata. */
export const WebhookMessageSchema = z.object({
	source: z.enum(["clerk", "razorpay", "stripe"]),
	/** svix-id: the idempotency key of the delivery. */
	svixId: z.string().min(1).max(200),
	type: z.string().min(1).max(200),
	/** Event time in ms (the envelope's `timestamp`, else svix-timestamp). */
	timestamp: z.number().int().nonnegative(),
	receivedAt: z.number().int().nonnegative(),
	/** The verified request body, exactly as received. */
	body: z.string(),
	/** Set by the operator replay route: reprocess even if already recorded. */
	replay: z.boolean().optional(),
	/**
	 * W3C `traceparent` of the request that queued it (ingest or replay): the consumer's log lines for the
	 * event carry its trace id (queue/webhooks/batch.ts). Absent on messages queued before it existed.
	 */
	traceparent: z.string().max(128).optional(),
});
export type WebhookMessage = z.infer<typeof WebhookMessageSchema>;

/** Clerk's envelope: { data, object: "event", type, timestamp, instance_id }. */
export const ClerkEnvelopeSchema = z.looseObject({
	data: z.record(z.string(), z.unknown()),
	object: z.literal("event").optional(),
	type: z.string().min(1),
	/** Event time: ms (Clerk), or seconds from other senders; a positive integer either way. */
	timestamp: z.number().int().positive().optional(),
	instance_id: z.string().optional(),
});
export type ClerkEnvelope = z.infer<typeof ClerkEnvelopeSchema>;
