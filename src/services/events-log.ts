import { and, desc, eq, inArray, type SQL, sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { keysetAfter } from "../db/keyset";
import { events } from "../db/schema";
import { ApiError } from "../errors";
import { decodeCursor, page } from "../lib/cursor";
import type { WebhookMessage } from "../queue/messages";
import type { SyncPlan } from "./sync-plan";

/**
 * The `events` table: every verified webhook delivery (Clerk, Razorpay, Stripe) with its outcome
 * (queued, processed, stale, ignored, failed), keyed by its svix id (the idempotency key).
 */

type EventOutcome = (typeof events.$inferSelect)["outcome"];

interface EventSummary {
	svixId: string;
	type: string;
	entityId: string | null;
	receivedAt: number;
	processedAt: number | null;
	outcome: EventOutcome;
}

/** An organization's events, newest first, keyset-paginated on (receivedAt, svixId) descending. */
export async function listOrgEvents(
	db: Database,
	orgId: string,
	q: { cursor?: string; limit: number; type?: string },
): Promise<{ data: EventSummary[]; nextCursor: string | null }> {
	const rows = await db
		.select({
			svixId: events.svixId,
			type: events.type,
			entityId: events.entityId,
			receivedAt: events.receivedAt,
			processedAt: events.processedAt,
			outcome: events.outcome,
		})
		.from(events)
		.where(
			and(
				eq(events.organizationId, orgId),
				q.type ? eq(events.type, q.type) : undefined,
				keysetAfter(events.receivedAt, events.svixId, decodeCursor(q.cursor), "desc"),
			),
		)
		.orderBy(desc(events.receivedAt), desc(events.svixId))
		.limit(q.limit + 1);
	return page(rows, q.limit, (r) => ({ k: r.receivedAt, id: r.svixId }));
}

interface OperatorEventSummary extends EventSummary {
	organizationId: string | null;
	source: string;
	attempts: number;
	error: string | null;
}

/**
 * Events of every organization (operators), newest first, keyset-paginated on (receivedAt, svixId)
 * descending; by outcome (e.g. failed: the dead-lettered ones to replay) and type.
 */
export async function listAllEvents(
	db: Database,
	q: { cursor?: string; limit: number; outcome?: EventOutcome; type?: string },
): Promise<{ data: OperatorEventSummary[]; nextCursor: string | null }> {
	const rows = await db
		.select({
			svixId: events.svixId,
			organizationId: events.organizationId,
			source: events.source,
			type: events.type,
			entityId: events.entityId,
			receivedAt: events.receivedAt,
			processedAt: events.processedAt,
			outcome: events.outcome,
			attempts: events.attempts,
			error: events.error,
		})
		.from(events)
		.where(
			and(
				q.outcome ? eq(events.outcome, q.outcome) : undefined,
				q.type ? eq(events.type, q.type) : undefined,
				keysetAfter(events.receivedAt, events.svixId, decodeCursor(q.cursor), "desc"),
			),
		)
		.orderBy(desc(events.receivedAt), desc(events.svixId))
		.limit(q.limit + 1);
	return page(rows, q.limit, (r) => ({ k: r.receivedAt, id: r.svixId }));
}

/**
 * Puts a stored event back on the webhook queue, marked as a replay (processed again even if already
 * recorded), and marks it queued. 404 for an unknown svix id, 503 when the queue refuses it. With
 * `traceparent` (the operator's request), the consumer's log lines for it join that trace.
 */
export async function replayEvent(
	db: Database,
	queue: Queue<WebhookMessage>,
	svixId: string,
	traceparent?: string,
	found?: (event: { organizationId: string | null }) => void,
): Promise<void> {
	const [row] = await db.select().from(events).where(eq(events.svixId, svixId));
	if (!row) throw new ApiError("NOT_FOUND", "no event with that svix id");
	found?.({ organizationId: row.organizationId });
	const message: WebhookMessage = {
		source: row.source as WebhookMessage["source"],
		svixId: row.svixId,
		type: row.type,
		timestamp: row.eventTimestamp,
		receivedAt: row.receivedAt,
		body: row.payload,
		replay: true,
		...(traceparent ? { traceparent } : {}),
	};
	// Marked queued before the send: a consumer quick enough to process the replay before this update
	// would otherwise have its outcome overwritten, the event left "queued" for good.
	await db.update(events).set({ outcome: "queued", error: null }).where(eq(events.svixId, svixId));
	try {
		await queue.send(message, { contentType: "json" });
	} catch {
		// Not sent: the outcome it had, unless something recorded a newer one meanwhile.
		await db
			.update(events)
			.set({ outcome: row.outcome, error: row.error })
			.where(and(eq(events.svixId, svixId), eq(events.outcome, "queued")))
			.catch(() => undefined);
		throw new ApiError("UPSTREAM_UNAVAILABLE", "event could not be queued, retry later");
	}
}

// D1 binds at most 100 parameters per statement.
const ID_CHUNK = 90;

/** The recorded outcome of each of these events that has one (events never seen are absent). */
export async function outcomesOf(db: Database, svixIds: string[]): Promise<Map<string, EventOutcome>> {
	const outcome = new Map<string, EventOutcome>();
	for (let i = 0; i < svixIds.length; i += ID_CHUNK) {
		const rows = await db
			.select({ svixId: events.svixId, outcome: events.outcome })
			.from(events)
			.where(inArray(events.svixId, svixIds.slice(i, i + ID_CHUNK)));
		for (const r of rows) outcome.set(r.svixId, r.outcome);
	}
	return outcome;
}

/** An outcome is final once the event was applied (processed, stale or ignored): a redelivery is a duplicate. */
export const isFinal = (outcome: EventOutcome | undefined): boolean =>
	outcome !== undefined && outcome !== "failed" && outcome !== "queued";

/**
 * The payload an event is kept with (events.payload, for replays and operators). Clerk's session.* events
 * carry the user's sign-in context (its user object with emails, the client's IP and user agent): only what
 * replaying one needs is kept (type, timestamp, the session's id, user, status and times). A user.* event
 * whose user is deleted by the time it is recorded (a late user.updated) is kept as user.deleted leaves the
 * others: its type and the user id. `entityId` is the user's id for user.* events.
 */
function storedPayload(body: WebhookMessage, entityId: string | null): SQL | string {
	if (body.source !== "clerk") return body.body;
	if (body.type.startsWith("session.")) {
		const p = body.body;
		const at = (path: string) => sql`json_extract(${p}, ${path})`;
		// json_patch onto {} drops what the event did not have (a JSON merge patch removes null members).
		return sql`json_patch('{}', json_object('type', ${at("$.type")}, 'object', 'event', 'timestamp', ${at("$.timestamp")}, 'data', json_object(
			'id', ${at("$.data.id")}, 'object', 'session', 'user_id', ${at("$.data.user_id")}, 'status', ${at("$.data.status")},
			'created_at', ${at("$.data.created_at")}, 'updated_at', ${at("$.data.updated_at")}, 'expire_at', ${at("$.data.expire_at")},
			'abandon_at', ${at("$.data.abandon_at")})))`;
	}
	if ((body.type === "user.created" || body.type === "user.updated") && entityId !== null) {
		return sql`CASE WHEN EXISTS (SELECT 1 FROM users WHERE id = ${entityId} AND deleted_at IS NOT NULL)
			THEN json_object('type', ${body.type}, 'object', 'event', 'redacted', json('true'), 'data', json_object('id', ${entityId}, 'object', 'user'))
			ELSE ${body.body} END`;
	}
	return body.body;
}

/**
 * The statement recording an applied event, run in the same batch as its plan: outcome processed,
 * stale (per the plan's staleCheck, evaluated after the plan's statements) or ignored; or failed
 * with the plan's error when the payload was malformed (nothing applied, not retried).
 */
export function recordAppliedSql(body: WebhookMessage, plan: SyncPlan | null, now: number, envelopeOk: boolean): SQL {
	const failed = plan?.failed ?? null;
	const outcome =
		failed !== null
			? sql`'failed'`
			: !envelopeOk || plan?.ignored
				? sql`'ignored'`
				: plan?.staleCheck
					? sql`CASE WHEN coalesce(${plan.staleCheck}, 0) = 1 THEN 'stale' ELSE 'processed' END`
					: sql`'processed'`;
	return sql`
		INSERT INTO events (svix_id, organization_id, source, type, entity_id, payload, event_timestamp, received_at,
			processed_at, outcome, attempts, error)
		VALUES (${body.svixId}, ${plan?.organizationId ?? null}, ${body.source}, ${body.type}, ${plan?.entityId ?? null},
			${storedPayload(body, plan?.entityId ?? null)}, ${body.timestamp}, ${body.receivedAt}, ${failed === null ? now : null}, ${outcome}, 1, ${failed})
		ON CONFLICT (svix_id) DO UPDATE SET organization_id = excluded.organization_id, entity_id = excluded.entity_id,
			processed_at = excluded.processed_at, outcome = excluded.outcome, attempts = events.attempts + 1, error = excluded.error`;
}

/**
 * Records a delivery attempt that failed and will be retried: outcome failed with the error and the
 * attempt number, so the failure is visible before the retries run out and the dead-letter consumer
 * knows how many attempts were made. An event already applied keeps its outcome.
 */
export async function recordAttemptFailed(
	db: Database,
	body: WebhookMessage,
	found: { organizationId: string | null; entityId: string | null },
	attempts: number,
	error: string,
): Promise<void> {
	await db.run(sql`
		INSERT INTO events (svix_id, organization_id, source, type, entity_id, payload, event_timestamp, received_at,
			processed_at, outcome, attempts, error)
		VALUES (${body.svixId}, ${found.organizationId}, ${body.source}, ${body.type}, ${found.entityId}, ${storedPayload(body, found.entityId)},
			${body.timestamp}, ${body.receivedAt}, NULL, 'failed', ${attempts}, ${error.slice(0, 1000)})
		ON CONFLICT (svix_id) DO UPDATE SET outcome = 'failed', error = excluded.error, processed_at = NULL,
			organization_id = coalesce(excluded.organization_id, events.organization_id),
			entity_id = coalesce(excluded.entity_id, events.entity_id), attempts = max(events.attempts, excluded.attempts)
		WHERE events.outcome NOT IN ('processed', 'stale', 'ignored')`);
}

/**
 * Keeps an event that exhausted its retries (payload included) as failed, so an operator can see and
 * replay it; an event already applied keeps its outcome. The dead-letter queue counts its own
 * deliveries from 1, so the attempt count is the larger of what the failed attempts recorded and it;
 * the error keeps the last recorded cause.
 */
export async function recordDeadLetter(
	db: Database,
	body: WebhookMessage,
	found: { organizationId: string | null; entityId: string | null },
	attempts: number,
): Promise<void> {
	await db.run(sql`
		INSERT INTO events (svix_id, organization_id, source, type, entity_id, payload, event_timestamp, received_at,
			processed_at, outcome, attempts, error)
		VALUES (${body.svixId}, ${found.organizationId}, ${body.source}, ${body.type}, ${found.entityId}, ${storedPayload(body, found.entityId)},
			${body.timestamp}, ${body.receivedAt}, NULL, 'failed', ${attempts}, 'retries exhausted')
		ON CONFLICT (svix_id) DO UPDATE SET outcome = 'failed', processed_at = NULL,
			error = CASE WHEN events.error IS NULL OR events.error LIKE 'retries exhausted%' THEN coalesce(events.error, 'retries exhausted')
				ELSE 'retries exhausted: ' || events.error END,
			organization_id = coalesce(events.organization_id, excluded.organization_id),
			entity_id = coalesce(events.entity_id, excluded.entity_id), attempts = max(events.attempts, excluded.attempts)
		WHERE events.outcome NOT IN ('processed', 'stale', 'ignored')`);
}
