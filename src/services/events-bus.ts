import type { SQL } from "drizzle-orm";
import { createDb } from "../db/client";
import type { Env } from "../env";
import { newId } from "../lib/ids";
import type { Logger } from "../lib/logger";
import type { RequestMeta } from "../lib/request-meta";
import type { AuditMessage, TenantEvent, WebhookEventMessage } from "../queue/tenant-events";
import { type ChangeLog, outboxInsert, parkInOutbox } from "./outbox";

/**
 * Hands tenant events to the tenant-events queue. If the queue refuses, the messages go to the D1
 * outbox instead and the cron handler re-sends them: an audit entry is never silently dropped.
 */
export async function publish(env: Env, messages: TenantEvent[], logger?: Logger): Promise<void> {
	if (messages.length === 0) return;
	try {
		await env.TENANT_EVENTS.sendBatch(messages.map((body) => ({ body, contentType: "json" as const })));
	} catch (err) {
		logger?.warn("tenant-events queue unavailable, using the outbox", {
			error: err instanceof Error ? err.message : String(err),
		});
		await parkInOutbox(createDb(env.DB), messages);
	}
}

export interface AuditInput {
	organizationId: string;
	action: string;
	targetType?: string | null;
	targetId?: string | null;
	before?: unknown;
	after?: unknown;
}

/** An audit entry for a request: the caller as actor, with IP, country, user agent and request id. */
export function auditEntry(meta: RequestMeta, input: AuditInput): AuditMessage {
	return {
		kind: "audit",
		id: newId("aud"),
		organizationId: input.organizationId,
		actorType: "user",
		actorId: meta.actor,
		action: input.action,
		targetType: input.targetType ?? null,
		targetId: input.targetId ?? null,
		before: input.before,
		after: input.after,
		context: { ip: meta.ip, country: meta.country, userAgent: meta.userAgent, requestId: meta.requestId },
		occurredAt: Date.now(),
	};
}

/** An audit entry written by the system (queue consumers, Durable Objects). */
export function systemAudit(input: AuditInput & { id?: string; occurredAt?: number }): AuditMessage {
	return {
		kind: "audit",
		id: input.id ?? newId("aud"),
		organizationId: input.organizationId,
		actorType: "system",
		actorId: null,
		action: input.action,
		targetType: input.targetType ?? null,
		targetId: input.targetId ?? null,
		before: input.before,
		after: input.after,
		context: {},
		occurredAt: input.occurredAt ?? Date.now(),
	};
}

/** An event for the organization's outgoing webhooks (delivered to the endpoints subscribed to `type`). */
export function tenantEvent(organizationId: string, type: string, data: unknown, id = newId("evt")): WebhookEventMessage {
	return { kind: "webhook.event", id, organizationId, type, data, occurredAt: Date.now() };
}

/**
 * The outbox statements of a request-side change, for the change's own batch (services/outbox.ts): its
 * audit entry (the caller from `log` as actor) and, optionally, its outgoing webhook event, written
 * only while `when` holds; `after` and `set` (SQL) fill in parts of the audit entry computed in the batch.
 * @example await runBatch(d1, [update, ...changeOutbox(log, { organizationId, action: "thing.updated" })])
 */
export function changeOutbox(
	log: ChangeLog,
	audit: AuditInput,
	event?: { type: string; data: unknown },
	opts: { after?: SQL; set?: Record<string, SQL>; when?: SQL } = {},
): SQL[] {
	const out = [outboxInsert(auditEntry(log.meta, audit), opts)];
	if (event) out.push(outboxInsert(tenantEvent(audit.organizationId, event.type, event.data), { when: opts.when }));
	return out;
}

/**
 * Audit + outgoing webhook for a request-side change, in one send: for what writes nothing to D1
 * (a call to Stripe, a refused payment signature), where there is no batch to write the outbox in.
 */
export function publishChange(
	env: Env,
	meta: RequestMeta,
	logger: Logger,
	audit: AuditInput,
	event?: { type: string; data: unknown },
): Promise<void> {
	const messages: TenantEvent[] = [auditEntry(meta, audit)];
	if (event) messages.push(tenantEvent(audit.organizationId, event.type, event.data));
	return publish(env, messages, logger);
}
