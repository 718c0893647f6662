import { and, eq, inArray, isNull, type SQL, sql } from "drizzle-orm";
import { runBatch } from "../db/batch";
import { createDb, type Database } from "../db/client";
import { events, memberships } from "../db/schema";
import type { Env } from "../env";
import { parseEnv } from "../env";
import { createLogger, errorFields, type Logger } from "../lib/logger";
import { clearAccessCache, invalidateAccess } from "../services/access";
import { planRazorpayEvent, planStripeEvent } from "../services/billing-sync";
import { planClerkEvent, type SyncPlan } from "../services/clerk-sync";
import { publish, systemAudit } from "../services/events-bus";
import { invalidateUser } from "../services/users";
import { backoffSeconds } from "./backoff";
import { ClerkEnvelopeSchema, type WebhookMessage, WebhookMessageSchema } from "./messages";
import { drainOutbox, processTenantBatch, recordTenantDeadLetters, TENANT_DLQ, TENANT_QUEUE } from "./tenant-consumer";
import type { TenantEvent } from "./tenant-events";

export const WEBHOOK_QUEUE = "webhook-events";
export const WEBHOOK_DLQ = "webhook-events-dlq";

/** The Worker's queue handler: routes each batch by queue name; an unknown queue is a deploy error. */
export async function handleQueue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
	const config = parseEnv(env);
	const logger = createLogger(config.LOG_LEVEL, { queue: batch.queue });
	const db = createDb(env.DB);
	if (batch.queue === WEBHOOK_QUEUE) return processWebhookBatch(db, batch, logger, env);
	if (batch.queue === WEBHOOK_DLQ) return recordDeadLetters(db, batch, logger);
	if (batch.queue === TENANT_QUEUE) return processTenantBatch(env, db, batch, logger);
	if (batch.queue === TENANT_DLQ) return recordTenantDeadLetters(env, batch, logger);
	throw new Error(`no consumer for queue ${batch.queue}`);
}

/** Cron (every minute): re-send tenant events parked in the outbox. */
export async function runScheduled(env: Env): Promise<void> {
	const config = parseEnv(env);
	const logger = createLogger(config.LOG_LEVEL, { cron: "outbox" });
	const sent = await drainOutbox(env, createDb(env.DB), logger);
	if (sent > 0) logger.info("outbox drained", { sent });
}

interface Planned {
	msg: Message<unknown>;
	body: WebhookMessage;
	plan: SyncPlan;
	statements: SQL[];
}

function parseMessage(msg: Message<unknown>, logger: Logger): WebhookMessage | null {
	const parsed = WebhookMessageSchema.safeParse(msg.body);
	if (!parsed.success) {
		// Not something our producer writes: retrying cannot fix it.
		logger.error("unreadable queue message dropped", { messageId: msg.id, issues: parsed.error.issues.length });
		return null;
	}
	return parsed.data;
}

function eventRow(body: WebhookMessage, plan: SyncPlan | null, now: number, envelopeOk: boolean) {
	const outcome =
		!envelopeOk || plan?.ignored
			? sql`'ignored'`
			: plan?.staleCheck
				? sql`CASE WHEN coalesce(${plan.staleCheck}, 0) = 1 THEN 'stale' ELSE 'processed' END`
				: sql`'processed'`;
	return sql`
		INSERT INTO events (svix_id, organization_id, source, type, entity_id, payload, event_timestamp, received_at,
			processed_at, outcome, attempts)
		VALUES (${body.svixId}, ${plan?.organizationId ?? null}, ${body.source}, ${body.type}, ${plan?.entityId ?? null},
			${body.body}, ${body.timestamp}, ${body.receivedAt}, ${now}, ${outcome}, 1)
		ON CONFLICT (svix_id) DO UPDATE SET organization_id = excluded.organization_id, entity_id = excluded.entity_id,
			processed_at = excluded.processed_at, outcome = excluded.outcome, attempts = events.attempts + 1, error = NULL`;
}

async function plan(db: Database, msg: Message<unknown>, body: WebhookMessage, now: number): Promise<Planned> {
	let json: unknown;
	try {
		json = JSON.parse(body.body);
	} catch {
		json = null;
	}
	let p: SyncPlan | null = null;
	if (body.source === "clerk") {
		const envelope = ClerkEnvelopeSchema.safeParse(json);
		if (envelope.success) p = planClerkEvent(envelope.data, body.timestamp, now, body.svixId);
	} else if (typeof json === "object" && json !== null) {
		const data = json as Record<string, unknown>;
		p =
			body.source === "razorpay"
				? await planRazorpayEvent(db, data, now, body.svixId)
				: await planStripeEvent(db, data, now, body.svixId);
	}
	// Verified but unreadable: keep it (outcome ignored) rather than retry forever.
	if (!p) return { msg, body, plan: emptyPlan(), statements: [eventRow(body, null, now, false)] };
	return { msg, body, plan: p, statements: [...p.statements, eventRow(body, p, now, true)] };
}

function emptyPlan(): SyncPlan {
	return { statements: [], organizationId: null, entityId: null, staleCheck: null, invalidate: {}, ignored: true };
}

function invalidate(p: SyncPlan) {
	if (p.invalidate.all) {
		clearAccessCache();
		invalidateUser();
	} else if (p.invalidate.orgId) invalidateAccess(p.invalidate.orgId, p.invalidate.userId);
}

/**
 * Applies a batch of webhook events. Idempotent on svix-id (an event already recorded is acked
 * unless it is an operator replay); the whole batch is one db.batch (atomic, one round trip). If
 * that fails, each message is retried on its own so one bad message cannot hold back the others:
 * the ones that succeed are acked, the failing one is retried with exponential backoff and, after
 * max_retries, lands in the dead-letter queue.
 */
export async function processWebhookBatch(db: Database, batch: MessageBatch<unknown>, logger: Logger, env?: Env): Promise<void> {
	const now = Date.now();
	const fresh: { msg: Message<unknown>; body: WebhookMessage }[] = [];
	const seen = new Set<string>();
	for (const msg of batch.messages) {
		const body = parseMessage(msg, logger);
		if (!body) {
			msg.ack();
			continue;
		}
		if (seen.has(body.svixId) && !body.replay) {
			msg.ack(); // the same delivery twice in one batch: the first one carries it
			continue;
		}
		seen.add(body.svixId);
		fresh.push({ msg, body });
	}

	const done = new Set<string>();
	const ids = fresh.filter((f) => !f.body.replay).map((f) => f.body.svixId);
	for (let i = 0; i < ids.length; i += 90) {
		const rows = await db
			.select({ svixId: events.svixId, outcome: events.outcome })
			.from(events)
			.where(inArray(events.svixId, ids.slice(i, i + 90)));
		for (const r of rows) if (r.outcome !== "failed" && r.outcome !== "queued") done.add(r.svixId);
	}
	// An event whose outcome is final was applied by an earlier delivery: a duplicate.
	const todo: Planned[] = [];
	for (const f of fresh) {
		if (done.has(f.body.svixId) && !f.body.replay) {
			logger.debug("duplicate delivery acked", { svixId: f.body.svixId });
			f.msg.ack();
		} else {
			todo.push(await plan(db, f.msg, f.body, now));
		}
	}
	if (todo.length === 0) return;

	const all = todo.flatMap((t) => t.statements);
	try {
		await runBatch(db.$client, all);
		await emitApplied(db, env, todo, logger);
		for (const t of todo) {
			invalidate(t.plan);
			t.msg.ack();
		}
		logger.info("webhook batch applied", { messages: todo.length, statements: all.length });
		return;
	} catch (err) {
		if (todo.length > 1) logger.warn("batch failed, isolating messages", errorFields(err));
		else return retry(todo[0] as Planned, err, logger);
	}

	for (const t of todo) {
		try {
			await runBatch(db.$client, t.statements);
			await emitApplied(db, env, [t], logger);
			invalidate(t.plan);
			t.msg.ack();
		} catch (err) {
			await retry(t, err, logger);
		}
	}
}

/**
 * Audit entries and tenant webhooks for the events that were applied (outcome processed, not stale),
 * plus a user.signed_in audit entry in each organization of a user whose session was created.
 * Ids derive from the svix id, so a redelivery is deduplicated downstream.
 */
async function emitApplied(db: Database, env: Env | undefined, applied: Planned[], logger: Logger): Promise<void> {
	if (!env) return;
	const wanted = applied.filter((t) => (t.plan.events?.length ?? 0) > 0 || t.body.type === "session.created");
	if (wanted.length === 0) return;
	// The D1 writes are committed: a failure here must not make the batch run again, so it is logged.
	try {
		const rows = await db
			.select({ svixId: events.svixId, outcome: events.outcome })
			.from(events)
			.where(
				inArray(
					events.svixId,
					wanted.map((t) => t.body.svixId),
				),
			);
		const outcome = new Map(rows.map((r) => [r.svixId, r.outcome]));
		const out: TenantEvent[] = [];
		for (const t of wanted) {
			if (t.body.type === "session.created") out.push(...(await signInAudits(db, t.body)));
			else if (outcome.get(t.body.svixId) === "processed") out.push(...(t.plan.events ?? []));
		}
		await publish(env, out, logger);
	} catch (err) {
		logger.error("could not publish tenant events for applied webhooks", { svixIds: wanted.map((t) => t.body.svixId), ...errorFields(err) });
	}
}

async function signInAudits(db: Database, body: WebhookMessage): Promise<TenantEvent[]> {
	let userId: string | null = null;
	try {
		userId = (JSON.parse(body.body) as { data?: { user_id?: string } }).data?.user_id ?? null;
	} catch {
		return [];
	}
	if (!userId) return [];
	const orgs = await db
		.select({ organizationId: memberships.organizationId })
		.from(memberships)
		.where(and(eq(memberships.userId, userId), isNull(memberships.deletedAt)));
	return orgs.map((o) =>
		systemAudit({
			id: `aud_${body.svixId}_${o.organizationId}`,
			organizationId: o.organizationId,
			action: "user.signed_in",
			targetType: "user",
			targetId: userId,
			occurredAt: body.timestamp,
		}),
	);
}

async function retry(t: Planned, err: unknown, logger: Logger): Promise<void> {
	const delaySeconds = backoffSeconds(t.msg.attempts);
	logger.error("webhook event failed, retrying", {
		svixId: t.body.svixId,
		type: t.body.type,
		attempts: t.msg.attempts,
		delaySeconds,
		...errorFields(err),
	});
	t.msg.retry({ delaySeconds });
}

/**
 * Dead-letter consumer: the message exhausted its retries. Keep it (payload included) as a failed
 * event so an operator can see it and replay it (POST /api/admin/events/:svixId/replay).
 */
export async function recordDeadLetters(db: Database, batch: MessageBatch<unknown>, logger: Logger): Promise<void> {
	const now = Date.now();
	for (const msg of batch.messages) {
		const body = parseMessage(msg, logger);
		if (!body) {
			msg.ack();
			continue;
		}
		let organizationId: string | null = null;
		let entityId: string | null = null;
		try {
			const p = (await plan(db, msg, body, now)).plan;
			organizationId = p.organizationId;
			entityId = p.entityId;
		} catch {
			// unreadable payload: still recorded below
		}
		try {
			await db.run(sql`
				INSERT INTO events (svix_id, organization_id, source, type, entity_id, payload, event_timestamp, received_at,
					processed_at, outcome, attempts, error)
				VALUES (${body.svixId}, ${organizationId}, ${body.source}, ${body.type}, ${entityId}, ${body.body},
					${body.timestamp}, ${body.receivedAt}, NULL, 'failed', ${msg.attempts}, 'retries exhausted')
				ON CONFLICT (svix_id) DO UPDATE SET outcome = 'failed', error = 'retries exhausted', processed_at = NULL
				WHERE events.outcome NOT IN ('processed', 'stale', 'ignored')`);
			logger.error("webhook event dead-lettered", { svixId: body.svixId, type: body.type });
			msg.ack();
		} catch (err) {
			logger.error("could not record dead letter", { svixId: body.svixId, ...errorFields(err) });
			msg.retry({ delaySeconds: backoffSeconds(msg.attempts) });
		}
	}
}
