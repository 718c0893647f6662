import { createDb } from "../db/client";
import type { Env } from "../env";
import { parseEnv } from "../env";
import { createLogger, errorFields } from "../lib/logger";
import { observeBatch } from "../lib/metrics";
import { endBillingOfDeletedOrgs } from "../services/billing-endings";
import { expireLapsedPlans } from "../services/billing-periods";
import { pruneExpired } from "../services/retention";
import { nudgeStores } from "../tenant-store/rollout";
import { purgeDeletedTenants } from "../tenant-store/purge";
import { runStoreUpgrades } from "../tenant-store/upgrade";
import { drainOutbox, processTenantBatch, recordTenantDeadLetters, TENANT_DLQ, TENANT_QUEUE } from "./tenant-consumer";
import { processWebhookBatch } from "./webhooks/batch";
import { recordDeadLetters } from "./webhooks/dead-letters";

const WEBHOOK_QUEUE = "webhook-events";
const WEBHOOK_DLQ = "webhook-events-dlq";

/**
 * The Worker's queue handler: routes each batch by queue name; an unknown queue is a deploy error.
 * Each batch writes one metrics data point (messages, acked, retried, lag: lib/metrics.ts); its log
 * lines share a trace of their own, and an event's lines the trace of the request that queued it.
 */
export async function handleQueue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
	const observed = observeBatch(env, batch);
	try {
		await consume(observed.batch, env);
		observed.done("ok");
	} catch (err) {
		observed.done("error");
		throw err;
	}
}

async function consume(batch: MessageBatch<unknown>, env: Env): Promise<void> {
	const config = parseEnv(env);
	const logger = createLogger(config.LOG_LEVEL, { queue: batch.queue });
	const db = createDb(env.DB);
	if (batch.queue === WEBHOOK_QUEUE) return processWebhookBatch(env, db, batch, logger);
	if (batch.queue === WEBHOOK_DLQ) return recordDeadLetters(db, batch, logger);
	if (batch.queue === TENANT_QUEUE) return processTenantBatch(env, db, batch, logger);
	if (batch.queue === TENANT_DLQ) return recordTenantDeadLetters(db, batch, logger);
	throw new Error(`no consumer for queue ${batch.queue}`);
}

/**
 * Cron (every minute): re-send tenant events parked in the outbox; fall lapsed subscriptions back to
 * what they still pay for (services/billing-periods.ts); prune payloads, delivery logs and idempotency
 * keys past their retention (services/retention.ts); move organizations still on the shared tables
 * into their tenant stores, a bounded step per run (tenant-store/upgrade.ts); delete offboarded tenants'
 * rows from the shared tables, in chunks (tenant-store/purge.ts); call idle stores behind
 * the latest schema version so they migrate, and record their versions (tenant-store/rollout.ts).
 * Each part runs even if another one failed. `now` is the run's clock (tests pass one).
 */
export async function runScheduled(env: Env, now = Date.now()): Promise<void> {
	const config = parseEnv(env);
	const logger = createLogger(config.LOG_LEVEL, { cron: "scheduled" });
	const db = createDb(env.DB);
	const parts: [string, () => Promise<unknown>][] = [
		[
			"outbox",
			async () => {
				const sent = await drainOutbox(env, db, logger);
				if (sent > 0) logger.info("outbox drained", { sent });
			},
		],
		["billing-periods", () => expireLapsedPlans(env, db, logger, now)],
		[
			"billing-endings",
			async () => {
				const r = await endBillingOfDeletedOrgs(db, config, logger, now);
				if (r.organizations + r.canceled + r.expired + r.pending > 0) logger.info("billing of deleted organizations", { ...r });
			},
		],
		[
			"retention",
			async () => {
				const pruned = await pruneExpired(db, now, config.EVENT_RETENTION_DAYS);
				if (pruned.events + pruned.deliveries + pruned.idempotencyKeys > 0) logger.info("pruned", { ...pruned });
			},
		],
		[
			"store-upgrades",
			async () => {
				const r = await runStoreUpgrades(env, now, logger);
				if (r.started + r.copied + r.flipped + r.failed > 0) logger.info("tenant store upgrades", { ...r });
			},
		],
		[
			"shared-purges",
			async () => {
				const r = await purgeDeletedTenants(env, now, logger);
				if (r.organizations + r.rows + r.pending > 0) logger.info("shared rows of offboarded tenants purged", { ...r });
			},
		],
		[
			"store-rollout",
			async () => {
				const r = await nudgeStores(env, logger);
				if (Object.keys(r.versions).length + r.failed > 0) logger.info("tenant store rollout nudged", { ...r });
			},
		],
	];
	const failed: string[] = [];
	for (const [name, run] of parts) {
		try {
			await run();
		} catch (err) {
			failed.push(name);
			logger.error("scheduled work failed", { part: name, ...errorFields(err) });
		}
	}
	if (failed.length > 0) throw new Error(`scheduled work failed: ${failed.join(", ")}`);
}
