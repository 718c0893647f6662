import type { Context } from "hono";
import type { AppEnv } from "../env";
import { type ChangeLog, changeLog, relayOutbox } from "../services/outbox";
import { requestMeta } from "./request-meta";

/**
 * Runs a change with a change log (services/outbox.ts): the service writes the change's audit entry
 * (and outgoing event) to the outbox in the change's own batch; once it committed, the rows are
 * relayed to the tenant-events queue in waitUntil, and the cron re-sends whatever the relay did not
 * get through. The relay also runs when `work` throws after its batch committed (e.g. a conflict
 * found once the batch ran): what was written is sent.
 * @example const key = await withChangeLog(c, (log) => createApiKey(c.get("db"), org, grantor, input, log));
 */
export async function withChangeLog<T>(c: Context<AppEnv>, work: (log: ChangeLog) => Promise<T>): Promise<T> {
	const log = changeLog(requestMeta(c));
	try {
		return await work(log);
	} finally {
		await relay(c, log);
	}
}

async function relay(c: Context<AppEnv>, log: ChangeLog): Promise<void> {
	if (log.written.length === 0) return;
	const relayed = relayOutbox(c.env, c.get("db"), log.written, c.get("logger"));
	// In a tenant store the relay is the store applying its own events (audit chain, fan-out): awaited,
	// so the entry is in the chain when the answer leaves. An interrupted one is applied by its alarm.
	if (c.get("store")) {
		await relayed;
		return;
	}
	try {
		c.executionCtx.waitUntil(relayed);
	} catch {
		// No execution context (app.request without one): the relay still runs; the cron covers it.
	}
}
