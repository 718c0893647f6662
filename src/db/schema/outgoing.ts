import { index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

// Outgoing tenant webhooks (endpoints, deliveries) and the outbox of the tenant-events queue.

export const webhookEndpoints = sqliteTable(
	"webhook_endpoints",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id").notNull(),
		url: text("url").notNull(),
		/** JSON array of event types; ["*"] for all. */
		eventTypes: text("event_types").notNull(),
		secret: text("secret").notNull(),
		status: text("status", { enum: ["enabled", "disabled"] }).notNull(),
		consecutiveFailures: integer("consecutive_failures").notNull().default(0),
		/** When the current run of failed attempts began (ms); null while the last attempt succeeded. */
		failingSince: integer("failing_since"),
		disabledReason: text("disabled_reason"),
		version: integer("version").notNull().default(1),
		createdAt: integer("created_at").notNull(),
		updatedAt: integer("updated_at").notNull(),
	},
	(t) => [index("webhook_endpoints_org_idx").on(t.organizationId, t.createdAt)],
);

export const webhookDeliveries = sqliteTable(
	"webhook_deliveries",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id").notNull(),
		endpointId: text("endpoint_id").notNull(),
		/** The event's id, sent as webhook-id: the same on every attempt and replay. */
		eventId: text("event_id").notNull(),
		eventType: text("event_type").notNull(),
		payload: text("payload").notNull(),
		status: text("status", { enum: ["pending", "retrying", "succeeded", "failed"] }).notNull(),
		attempts: integer("attempts").notNull().default(0),
		lastStatusCode: integer("last_status_code"),
		lastError: text("last_error"),
		nextAttemptAt: integer("next_attempt_at"),
		createdAt: integer("created_at").notNull(),
		updatedAt: integer("updated_at").notNull(),
	},
	(t) => [
		index("webhook_deliveries_org_endpoint_idx").on(t.organizationId, t.endpointId, t.createdAt),
		index("webhook_deliveries_org_event_idx").on(t.organizationId, t.eventId, t.endpointId),
	],
);

/**
 * The transactional outbox of the tenant-events queue: each tenant event (audit entry, outgoing event)
 * is written here in the same D1 batch as the change it records, relayed to the queue right after
 * (and by the cron while still pending), and deleted once the queue accepted it. The id is the event's
 * own id (aud_/evt_/dlv_), so parking the same event twice keeps one row. `attempts` counts the relays
 * that came back from the dead-letter queue; at the bound the row stays `failed` for an operator.
 */
export const outbox = sqliteTable(
	"outbox",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id"),
		body: text("body").notNull(),
		createdAt: integer("created_at").notNull(),
		attempts: integer("attempts").notNull().default(0),
		status: text("status", { enum: ["pending", "failed"] }).notNull().default("pending"),
		lastError: text("last_error"),
		updatedAt: integer("updated_at"),
	},
	(t) => [index("outbox_status_created_idx").on(t.status, t.createdAt), index("outbox_org_idx").on(t.organizationId)],
);

/**
 * A tenant store's outbox and endpoint figures for operator health, reported by the store when they change
 * (tenant-store/object.ts reportHealth); a healthy store has no row.
 */
export const storeHealth = sqliteTable("store_health", {
	organizationId: text("organization_id").primaryKey(),
	outboxPending: integer("outbox_pending").notNull(),
	/** created_at (ms) of the oldest pending outbox row; null when none. */
	outboxOldest: integer("outbox_oldest"),
	outboxFailed: integer("outbox_failed").notNull(),
	endpointsFailing: integer("endpoints_failing").notNull(),
	endpointsDisabled: integer("endpoints_disabled").notNull(),
	reportedAt: integer("reported_at").notNull(),
});
