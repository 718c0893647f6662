import { env } from "cloudflare:workers";
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import worker from "../../src/index";
import type { TenantEvent } from "../../src/queue/tenant-events";

/** Runs the tenant-events consumer on the given messages; reports acks, retries and their delays. */
export async function deliverTenant(bodies: TenantEvent[], opts: { attempts?: number; queue?: string } = {}) {
	const batch = createMessageBatch<TenantEvent>(
		opts.queue ?? "tenant-events",
		bodies.map((body, i) => ({ id: `t${Date.now()}-${i}-${Math.random()}`, timestamp: new Date(), attempts: opts.attempts ?? 1, body })),
	);
	const delays: Record<string, number | undefined> = {};
	for (const m of batch.messages) {
		const retry = m.retry.bind(m);
		m.retry = (o?: QueueRetryOptions) => {
			delays[m.id] = o?.delaySeconds;
			retry(o);
		};
	}
	const ctx = createExecutionContext();
	await worker.queue(batch as MessageBatch<unknown>, env);
	const result = await getQueueResult(batch, ctx);
	return { ...result, ids: batch.messages.map((m) => m.id), delays };
}

/** Captures what the Worker sends to the tenant-events queue (without delivering it). */
export function captureTenantEvents(vi: typeof import("vitest").vi) {
	const sent: TenantEvent[] = [];
	vi.spyOn(env.TENANT_EVENTS, "sendBatch").mockImplementation(async (msgs) => {
		for (const m of msgs) sent.push(m.body as TenantEvent);
		return undefined as never;
	});
	vi.spyOn(env.TENANT_EVENTS, "send").mockImplementation(async (m) => {
		sent.push(m as TenantEvent);
		return undefined as never;
	});
	return sent;
}
