import { env } from "cloudflare:workers";
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import worker from "../../src/index";
import type { WebhookMessage } from "../../src/queue/messages";
import { uid } from "./factories";

export const QUEUE = "webhook-events";
export const DLQ = "webhook-events-dlq";

/** The queue message the ingest route would produce for this Clerk envelope. */
export function messageFor(event: { type: string; timestamp?: number }, svixId = uid("msg")): WebhookMessage {
	return {
		source: "clerk",
		svixId,
		type: event.type,
		timestamp: event.timestamp ?? Date.now(),
		receivedAt: Date.now(),
		body: JSON.stringify(event),
	};
}

/** Runs the Worker's queue handler on a batch, as the Queues runtime would, and returns what it acked/retried. */
export async function deliver(bodies: WebhookMessage[], opts: { queue?: string; attempts?: number } = {}) {
	const batch = createMessageBatch<WebhookMessage>(
		opts.queue ?? QUEUE,
		bodies.map((body, i) => ({ id: `${body.svixId}-${i}`, timestamp: new Date(), attempts: opts.attempts ?? 1, body })),
	);
	// getQueueResult reports which messages were retried but not their options: record those here.
	const delays: Record<string, number | undefined> = {};
	for (const m of batch.messages) {
		const retry = m.retry.bind(m);
		m.retry = (options?: QueueRetryOptions) => {
			delays[m.id] = options?.delaySeconds;
			retry(options);
		};
	}
	const ctx = createExecutionContext();
	await worker.queue(batch as MessageBatch<unknown>, env);
	const result = await getQueueResult(batch, ctx);
	return { ...result, ids: batch.messages.map((m) => m.id), delays };
}

export async function eventRow(svixId: string) {
	return env.DB.prepare("SELECT * FROM events WHERE svix_id = ?").bind(svixId).first<Record<string, unknown>>();
}
