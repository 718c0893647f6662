import type { Database } from "../db/client";
import type { Env } from "../env";
import { errorFields, type Logger } from "../lib/logger";
import { appendAudit } from "../services/audit";
import { publish } from "../services/events-bus";
import { parkDeadLetters, pendingInOutbox, relayOutbox } from "../services/outbox";
import { attemptDelivery, fanOut } from "../services/outgoing-webhooks";
import { type StoreRoute, type StoreStub, storeCall, storeRoute } from "../tenant-store/directory";
import { backoffSeconds } from "./backoff";
import { type AuditMessage, type TenantEvent, TenantEventSchema } from "./tenant-events";

export const TENANT_QUEUE = "tenant-events";
export const TENANT_DLQ = "tenant-events-dlq";
/** An event of a tenant being moved to its store is retried after this long. */
const MIGRATING_RETRY_SECONDS = 120;

/** Tenant stores a batch works with at once (Workers open at most 6 connections at a time per invocation). */
const STORES_AT_ONCE = 6;

/**
 * tenant-events consumer. Audit entries of one batch are chained per organization in one D1 batch
 * each; webhook events fan out into one delivery message per subscribed endpoint; deliveries are
 * attempted and retried with their own backoff. Every message is acked or retried on its own.
 */
export async function processTenantBatch(env: Env, db: Database, batch: MessageBatch<unknown>, logger: Logger): Promise<void> {
	const audits: { msg: Message<unknown>; body: AuditMessage }[] = [];
	const toStores = new Map<string, { route: StoreRoute; events: { msg: Message<unknown>; body: TenantEvent }[] }>();
	for (const msg of batch.messages) {
		const parsed = TenantEventSchema.safeParse(msg.body);
		if (!parsed.success) {
			logger.error("unreadable tenant event dropped", { messageId: msg.id });
			msg.ack();
			continue;
		}
		const body = parsed.data;
		const route = await storeRoute(env, body.organizationId);
		const { state } = route;
		// A tenant with its own store applies its events there (tenant-store/object.ts).
		if (state === "store") {
			const forStore = toStores.get(body.organizationId) ?? { route, events: [] };
			forStore.events.push({ msg, body });
			toStores.set(body.organizationId, forStore);
			continue;
		}
		// Being moved to its store (tenant-store/upgrade.ts): its shared-table rows must not change until
		// the flip, so the event waits in the queue (past its retries, in the outbox) and then goes to the store.
		if (state === "migrating") {
			msg.retry({ delaySeconds: MIGRATING_RETRY_SECONDS });
			continue;
		}
		if (state === "deleted") {
			logger.warn("tenant event of an offboarded organization dropped", { kind: body.kind, orgId: body.organizationId });
			msg.ack();
			continue;
		}
		if (body.kind === "audit") {
			audits.push({ msg, body });
			continue;
		}
		try {
			if (body.kind === "webhook.event") {
				await publish(env, await fanOut(db, env.DB, body), logger);
				msg.ack();
			} else {
				const result = await attemptDelivery(db, body.deliveryId, body.organizationId);
				await publish(env, result.publish, logger);
				if (result.retryInSeconds !== undefined) msg.retry({ delaySeconds: result.retryInSeconds });
				else msg.ack();
			}
		} catch (err) {
			logger.error("tenant event failed, retrying", { kind: body.kind, ...errorFields(err) });
			msg.retry({ delaySeconds: backoffSeconds(msg.attempts) });
		}
	}
	// Tenants side by side (a few at a time): one tenant's slow endpoint (up to a 10 s timeout per attempt)
	// holds back only its own deliveries, not every other tenant's in the batch.
	const stores = [...toStores];
	const worker = async () => {
		for (let next = stores.shift(); next; next = stores.shift()) {
			const [orgId, { route, events }] = next;
			await applyInStore((call) => storeCall(env, orgId, route, call), orgId, events, logger);
		}
	};
	await Promise.all(Array.from({ length: Math.min(STORES_AT_ONCE, stores.length) }, worker));
	if (audits.length > 0) {
		const failed = await appendAudit(
			db,
			audits.map((a) => a.body),
		);
		for (const a of audits) {
			if (failed.has(a.body.organizationId)) a.msg.retry({ delaySeconds: backoffSeconds(a.msg.attempts) });
			else a.msg.ack();
		}
		for (const [orgId, err] of failed) logger.warn("audit append failed (a concurrent writer, or the error given), retrying", { orgId, ...errorFields(err) });
	}
}

/**
 * One tenant's events, in its store: audit entries and outgoing events applied in one call (the store
 * is idempotent on their ids), each delivery attempted by the store (it holds the endpoint and its
 * secret) and retried with the backoff it returns. `inStore` makes the calls (storeCall: a store
 * retired by a region change refuses them, and they go to the new region's store).
 */
async function applyInStore(inStore: <T>(call: (stub: StoreStub) => Promise<T>) => Promise<T>, orgId: string, list: { msg: Message<unknown>; body: TenantEvent }[], logger: Logger): Promise<void> {
	const events = list.filter((e) => e.body.kind !== "webhook.deliver");
	if (events.length > 0) {
		try {
			await inStore((s) => s.apply(events.map((e) => e.body)));
			for (const e of events) e.msg.ack();
		} catch (err) {
			logger.error("tenant store could not apply events, retrying", { orgId, ...errorFields(err) });
			for (const e of events) e.msg.retry({ delaySeconds: backoffSeconds(e.msg.attempts) });
		}
	}
	for (const { msg, body } of list) {
		if (body.kind !== "webhook.deliver") continue;
		try {
			const result = await inStore((s) => s.deliver(body.deliveryId, orgId));
			if (result.retryInSeconds !== undefined) msg.retry({ delaySeconds: result.retryInSeconds });
			else msg.ack();
		} catch (err) {
			logger.error("delivery failed in the tenant store, retrying", { orgId, ...errorFields(err) });
			msg.retry({ delaySeconds: backoffSeconds(msg.attempts) });
		}
	}
}

/**
 * Dead letters: audit entries, outgoing events and delivery attempts go back to the outbox with their relay
 * count, pending (the cron re-sends them) until the bound, then failed (kept for an operator): an event that
 * always fails stops cycling. A delivery reaches this queue still retrying when its retries went on waiting
 * (its tenant being moved to its store, errors): parked, it is attempted again, where it was left retrying
 * for good before (a delivery that did end, delivered or failed, is acked by its next attempt).
 */
export async function recordTenantDeadLetters(db: Database, batch: MessageBatch<unknown>, logger: Logger): Promise<void> {
	const keep: TenantEvent[] = [];
	for (const msg of batch.messages) {
		const parsed = TenantEventSchema.safeParse(msg.body);
		if (parsed.success) keep.push(parsed.data);
		else logger.error("tenant event dead-lettered", { body: JSON.stringify(msg.body).slice(0, 500) });
	}
	await parkDeadLetters(db, keep);
	for (const msg of batch.messages) msg.ack();
}

/** Cron: re-send what the outbox holds pending (oldest first, 100 at a time), deleting what the queue accepted. */
export async function drainOutbox(env: Env, db: Database, logger: Logger): Promise<number> {
	return relayOutbox(env, db, await pendingInOutbox(db, 100), logger);
}
