import { type SQL, sql } from "drizzle-orm";
import type { Database } from "../../db/client";
import type { Logger } from "../../lib/logger";
import { parseTraceparent } from "../../lib/trace";
import { planRazorpayEvent, planStripeEvent } from "../../services/billing-sync";
import { planClerkEvent } from "../../services/clerk-sync";
import { recordAppliedSql } from "../../services/events-log";
import { outboxInsert } from "../../services/outbox";
import type { SyncPlan } from "../../services/sync-plan";
import { ClerkEnvelopeSchema, type WebhookMessage, WebhookMessageSchema } from "../messages";

/**
 * A queued webhook event with its plan: the sync statements, the one recording its outcome, and its
 * audit entries and outgoing events as outbox rows (relayed once the batch committed).
 */
export interface Planned {
	msg: Message<unknown>;
	body: WebhookMessage;
	plan: SyncPlan;
	statements: SyncPlan["statements"];
}

/** The message body, or null (logged) when it is not something our producers write: retrying cannot fix it. */
export function parseMessage(msg: Message<unknown>, logger: Logger): WebhookMessage | null {
	const parsed = WebhookMessageSchema.safeParse(msg.body);
	if (!parsed.success) {
		logger.error("unreadable queue message dropped", { messageId: msg.id, issues: parsed.error.issues.length });
		return null;
	}
	return parsed.data;
}

/**
 * The logger for one event's lines: on the trace of the request that queued it (its `traceparent`:
 * ingest or operator replay; `parentSpanId` is that request's span), so ingest and consumer lines join
 * up. A message without one (queued before it existed) stays on the batch's trace.
 */
export function eventLogger(logger: Logger, body: WebhookMessage): Logger {
	const parent = parseTraceparent(body.traceparent);
	if (!parent) return logger.child({ svixId: body.svixId });
	return logger.child({ traceId: parent.traceId, parentSpanId: parent.parentId, svixId: body.svixId });
}

/** Plans one event with the planner of its source (Clerk, Razorpay, Stripe). */
export async function planMessage(db: Database, msg: Message<unknown>, body: WebhookMessage, now: number): Promise<Planned> {
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
		// Kept only for a placeholder row whose region is still the default (no Clerk event decided it yet).
		if (p?.regionClaim) {
			const row = await db.$client
				.prepare("SELECT 1 AS placeholder FROM organizations WHERE id = ? AND source_updated_at = 0 AND data_region = 'default' AND deleted_at IS NULL")
				.bind(p.regionClaim)
				.first();
			if (!row) p.regionClaim = undefined;
		}
	} else if (typeof json === "object" && json !== null) {
		const data = json as Record<string, unknown>;
		p =
			body.source === "razorpay"
				? await planRazorpayEvent(db, data, now, body.svixId)
				: await planStripeEvent(db, data, now, body.svixId);
	}
	// Verified but unreadable: keep it (outcome ignored) rather than retry forever.
	if (!p) return { msg, body, plan: emptyPlan(), statements: [recordAppliedSql(body, null, now, false)] };
	return { msg, body, plan: p, statements: [...p.statements, recordAppliedSql(body, p, now, true), ...outboxOf(body, p)] };
}

/**
 * The plan's events as outbox rows in its own batch, after the statement recording its outcome: written
 * only if the event applied (outcome processed), so an applied event is always audited and a stale one
 * never; plus the plan's own outbox statements.
 */
function outboxOf(body: WebhookMessage, p: SyncPlan): SQL[] {
	const applied = sql`EXISTS (SELECT 1 FROM events WHERE svix_id = ${body.svixId} AND outcome = 'processed')`;
	return [...(p.events ?? []).map((e) => outboxInsert(e, { when: applied })), ...(p.outbox ?? [])];
}

function emptyPlan(): SyncPlan {
	return { statements: [], organizationId: null, entityId: null, staleCheck: null, invalidate: {}, ignored: true };
}
