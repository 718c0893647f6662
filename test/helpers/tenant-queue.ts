import { env } from "cloudflare:workers";
import type { TenantEvent } from "../../src/queue/tenant-events";
import { runQueue } from "./queue";

/** Runs the tenant-events consumer on the given messages; reports acks, retries and their delays. */
export const deliverTenant = (bodies: TenantEvent[], opts: { attempts?: number; queue?: string } = {}) =>
	runQueue(opts.queue ?? "tenant-events", bodies, opts.attempts);

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
