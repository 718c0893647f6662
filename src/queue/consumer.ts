import { createDb } from "../db/client";
import type { Env } from "../env";
import { parseEnv } from "../env";
import { createLogger } from "../lib/logger";
import { drainOutbox, processTenantBatch, recordTenantDeadLetters, TENANT_DLQ, TENANT_QUEUE } from "./tenant-consumer";
import { processWebhookBatch } from "./webhooks/batch";
import { recordDeadLetters } from "./webhooks/dead-letters";

const WEBHOOK_QUEUE = "webhook-events";
const WEBHOOK_DLQ = "webhook-events-dlq";

/** The Worker's queue handler: routes each batch by queue name; an unknown queue is a deploy error. */
export async function handleQueue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
	const config = parseEnv(env);
	const logger = createLogger(config.LOG_LEVEL, { queue: batch.queue });
	const db = createDb(env.DB);
	if (batch.queue === WEBHOOK_QUEUE) return processWebhookBatch(env, db, batch, logger);
	if (batch.queue === WEBHOOK_DLQ) return recordDeadLetters(db, batch, logger);
	if (batch.queue === TENANT_QUEUE) return processTenantBatch(env, db, batch, logger);
	if (batch.queue === TENANT_DLQ) return recordTenantDeadLetters(db, batch, logger);
	throw new Error(`no consumer for queue ${batch.queue}`);
}

/** Cron (every minute): re-send tenant events parked in the outbox. */
export async function runScheduled(env: Env): Promise<void> {
	const config = parseEnv(env);
	const logger = createLogger(config.LOG_LEVEL, { cron: "outbox" });
	const sent = await drainOutbox(env, createDb(env.DB), logger);
	if (sent > 0) logger.info("outbox drained", { sent });
}
