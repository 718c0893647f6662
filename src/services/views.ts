import { type SQL, sql } from "drizzle-orm";
import type { auditLogs, orderItems, orderStatusHistory, orders, webhookDeliveries, webhookEndpoints } from "../db/schema";
import { strip } from "./store/shared";

/**
 * How the API renders a tenant resource from its stored row: the routes answer with these, and the
 * operator export (tenant-store/records.ts) writes the same JSON, so both stay one shape.
 */

type OrderRow = typeof orders.$inferSelect;
type OrderItemRow = typeof orderItems.$inferSelect;
type HistoryRow = typeof orderStatusHistory.$inferSelect;

/** An order with its items and status history (GET …/orders/:orderId). */
export function orderView<T extends OrderRow & { items: OrderItemRow[]; history: HistoryRow[] }>(o: T) {
	return {
		...strip(o),
		items: o.items.map(({ organizationId: _o, orderId: _id, ...it }) => it),
		history: o.history.map(({ organizationId: _o, id: _i, orderId: _id, ...h }) => h),
	};
}

/** An outgoing webhook endpoint without its secret (shown once, on creation). */
export const endpointView = (e: typeof webhookEndpoints.$inferSelect) => ({
	id: e.id,
	url: e.url,
	eventTypes: JSON.parse(e.eventTypes) as string[],
	status: e.status,
	consecutiveFailures: e.consecutiveFailures,
	failingSince: e.failingSince,
	disabledReason: e.disabledReason,
	createdAt: e.createdAt,
	updatedAt: e.updatedAt,
});

/**
 * endpointView as SQL over the stored endpoint (JSON, null when there is none): its twin, for an audit
 * entry written in a change's batch.
 */
export const endpointViewSql = (endpointId: string): SQL =>
	sql`(SELECT json_object('id', id, 'url', url, 'eventTypes', json(event_types), 'status', status,
		'consecutiveFailures', consecutive_failures, 'failingSince', failing_since, 'disabledReason', disabled_reason, 'createdAt', created_at,
		'updatedAt', updated_at) FROM webhook_endpoints WHERE id = ${endpointId})`;

/** One delivery of an endpoint's log (GET …/webhooks/:endpointId/deliveries). */
export const deliveryView = ({ organizationId: _o, endpointId: _e, payload: _p, ...d }: typeof webhookDeliveries.$inferSelect) => d;

const parse = (v: string | null): unknown => (v === null ? null : JSON.parse(v));

/** One audit entry (GET …/audit-logs). */
export const auditEntryView = (r: typeof auditLogs.$inferSelect) => ({
	id: r.id,
	seq: r.seq,
	actor: { type: r.actorType, id: r.actorId },
	action: r.action,
	target: { type: r.targetType, id: r.targetId },
	before: parse(r.before),
	after: parse(r.after),
	context: { ip: r.ip, country: r.country, userAgent: r.userAgent, requestId: r.requestId },
	occurredAt: r.occurredAt,
	prevHash: r.prevHash,
	hash: r.hash,
});
