import { runBatch } from "../../db/batch";
import type { Database } from "../../db/client";
import type { Env } from "../../env";
import { errorFields, type Logger } from "../../lib/logger";
import { isFinal, outcomesOf, recordAttemptFailed } from "../../services/events-log";
import { backoffSeconds } from "../backoff";
import type { WebhookMessage } from "../messages";
import { applyRegionClaims, invalidateCaches, notifyStores, relayApplied } from "./applied";
import { eventLogger, type Planned, parseMessage, planMessage } from "./planners";

/**
 * Applies a batch of webhook events. Idempotent on svix-id (an event already recorded is acked
 * unless it is an operator replay); the whole batch is one db.batch (atomic, one round trip). If
 * that fails, each message is retried on its own so one bad message cannot hold back the others:
 * the ones that succeed are acked, the failing one is retried with exponential backoff and, after
 * max_retries, lands in the dead-letter queue. Planning is isolated the same way: a malformed
 * payload is recorded as failed (and acked: retrying cannot fix it), a planner that throws retries
 * only its own message. Each failed attempt is recorded (outcome failed, error, attempt number).
 * The events' audit entries and outgoing events are outbox rows of the same batch (planners.ts),
 * relayed once it committed: an applied event is always audited.
 */
export async function processWebhookBatch(env: Env, db: Database, batch: MessageBatch<unknown>, logger: Logger): Promise<void> {
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

	const recorded = await outcomesOf(
		db,
		fresh.filter((f) => !f.body.replay).map((f) => f.body.svixId),
	);
	// An event whose outcome is final was applied by an earlier delivery: a duplicate.
	const todo: Planned[] = [];
	for (const f of fresh) {
		if (isFinal(recorded.get(f.body.svixId)) && !f.body.replay) {
			eventLogger(logger, f.body).debug("duplicate delivery acked");
			f.msg.ack();
		} else {
			try {
				todo.push(await planMessage(db, f.msg, f.body, now));
			} catch (err) {
				await retry(db, { msg: f.msg, body: f.body, plan: null }, err, logger);
			}
		}
	}
	if (todo.length === 0) return;

	const all = todo.flatMap((t) => t.statements);
	try {
		const results = await runBatch(db.$client, all);
		// Before the batch's audit entries are relayed: one landing in the old region's store first would count as data there.
		await applyRegionClaims(env, db, todo, logger);
		await relayApplied(env, db, results, logger);
		await notifyStores(env, todo, logger);
		for (const t of todo) {
			invalidateCaches(t);
			t.msg.ack();
			applied(t, logger);
		}
		logger.info("webhook batch applied", { messages: todo.length, statements: all.length });
		return;
	} catch (err) {
		if (todo.length > 1) logger.warn("batch failed, isolating messages", errorFields(err));
		else return retry(db, todo[0] as Planned, err, logger);
	}

	for (const t of todo) {
		try {
			const results = await runBatch(db.$client, t.statements);
			await applyRegionClaims(env, db, [t], logger);
			await relayApplied(env, db, results, logger);
			await notifyStores(env, [t], logger);
			invalidateCaches(t);
			t.msg.ack();
			applied(t, logger);
		} catch (err) {
			await retry(db, t, err, logger);
		}
	}
}

/** One line per applied event, on the event's trace (its ingest request's): how long it waited. */
function applied(t: Planned, logger: Logger): void {
	const log = eventLogger(logger, t.body);
	if (t.plan.warning) log.warn(t.plan.warning);
	log.info("webhook event applied", {
		source: t.body.source,
		type: t.body.type,
		attempts: t.msg.attempts,
		sinceReceivedMs: Date.now() - t.body.receivedAt,
	});
}

/** Retries one message with backoff, after recording the failed attempt (best effort: D1 may be what failed). */
async function retry(
	db: Database,
	t: Pick<Planned, "msg" | "body"> & { plan: Planned["plan"] | null },
	err: unknown,
	logger: Logger,
): Promise<void> {
	const delaySeconds = backoffSeconds(t.msg.attempts);
	try {
		await recordAttemptFailed(
			db,
			t.body,
			{ organizationId: t.plan?.organizationId ?? null, entityId: t.plan?.entityId ?? null },
			t.msg.attempts,
			err instanceof Error ? err.message : String(err),
		);
	} catch (recordErr) {
		eventLogger(logger, t.body).warn("could not record the failed attempt", errorFields(recordErr));
	}
	eventLogger(logger, t.body).error("webhook event failed, retrying", {
		type: t.body.type,
		attempts: t.msg.attempts,
		delaySeconds,
		...errorFields(err),
	});
	t.msg.retry({ delaySeconds });
}
