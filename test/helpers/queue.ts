import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
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

/** The queue message the Stripe webhook route produces for a verified event `type` about `object`, created at `createdMs`. */
export function stripeMessage(type: string, createdMs: number, object: unknown): WebhookMessage {
	const id = `evt_${uid("s").slice(-16)}`;
	const created = Math.floor(createdMs / 1000);
	return {
		source: "stripe",
		svixId: id,
		type,
		timestamp: created * 1000,
		receivedAt: Date.now(),
		body: JSON.stringify({ id, object: "event", type, created, data: { object } }),
	};
}

/** How a batch is run: bindings or vars overridden (a metrics recorder, LOG_LEVEL …), when its messages were sent. */
export interface RunOptions {
	env?: Record<string, unknown>;
	sentAt?: Date;
}

/**
 * Runs the Worker's queue handler on a batch, as the Queues runtime would, and returns what it acked
 * and retried. getQueueResult reports retried messages but not their options: delays are recorded here.
 */
export async function runQueue<Body>(queue: string, bodies: Body[], attempts = 1, opts: RunOptions = {}) {
	const batch = createMessageBatch<Body>(
		queue,
		bodies.map((body, i) => ({ id: `${uid("m")}-${i}`, timestamp: opts.sentAt ?? new Date(), attempts, body })),
	);
	const delays: Record<string, number | undefined> = {};
	for (const m of batch.messages) {
		const retry = m.retry.bind(m);
		m.retry = (options?: QueueRetryOptions) => {
			delays[m.id] = options?.delaySeconds;
			retry(options);
		};
	}
	const ctx = createExecutionContext();
	await worker.queue(batch as MessageBatch<unknown>, opts.env ? ({ ...env, ...opts.env } as typeof env) : env);
	const result = await getQueueResult(batch, ctx);
	return { ...result, ids: batch.messages.map((m) => m.id), delays };
}

export const deliver = (bodies: WebhookMessage[], opts: { queue?: string; attempts?: number } & RunOptions = {}) =>
	runQueue(opts.queue ?? QUEUE, bodies, opts.attempts, opts);

export async function eventRow(svixId: string) {
	return env.DB.prepare("SELECT * FROM events WHERE svix_id = ?").bind(svixId).first<Record<string, unknown>>();
}
