import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

// The tenant audit log.

/**
 * Append-only audit log; each organization's entries form a hash chain (hash covers the entry and the
 * previous entry's hash). Triggers in the migration refuse UPDATE and DELETE.
 */
export const auditLogs = sqliteTable(
	"audit_logs",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id").notNull(),
		seq: integer("seq").notNull(),
		/** Producer-side id: the same event delivered twice is written once. */
		eventId: text("event_id").notNull(),
		actorType: text("actor_type", { enum: ["user", "system"] }).notNull(),
		actorId: text("actor_id"),
		action: text("action").notNull(),
		targetType: text("target_type"),
		targetId: text("target_id"),
		before: text("before"),
		after: text("after"),
		ip: text("ip"),
		country: text("country"),
		userAgent: text("user_agent"),
		requestId: text("request_id"),
		occurredAt: integer("occurred_at").notNull(),
		prevHash: text("prev_hash").notNull(),
		hash: text("hash").notNull(),
	},
	(t) => [
		uniqueIndex("audit_logs_org_seq_uq").on(t.organizationId, t.seq),
		uniqueIndex("audit_logs_org_event_uq").on(t.organizationId, t.eventId),
		index("audit_logs_org_action_idx").on(t.organizationId, t.action, t.seq),
		index("audit_logs_org_actor_idx").on(t.organizationId, t.actorId, t.seq),
		index("audit_logs_org_time_idx").on(t.organizationId, t.occurredAt),
	],
);

/**
 * Per organization, the last audit entry verified intact and its hash: GET …/audit-logs/verify
 * continues from here. It moves forward only over entries verified from genesis or from itself, and
 * back when a later verification finds a break at or before it.
 */
export const auditCheckpoints = sqliteTable("audit_checkpoints", {
	organizationId: text("organization_id").primaryKey(),
	seq: integer("seq").notNull(),
	hash: text("hash").notNull(),
	verifiedAt: integer("verified_at").notNull(),
});

/**
 * What operators did (services/operator-actions.ts): each operator request that changed something or
 * exported a tenant, once it succeeded. Kept in the directory: a tenant's own chain goes with its deletion.
 */
export const operatorActions = sqliteTable(
	"operator_actions",
	{
		id: text("id").primaryKey(),
		at: integer("at").notNull(),
		operatorId: text("operator_id").notNull(),
		/** org.updated, org.deleted, org.exported, event.replayed, outbox.replayed (or "<METHOD> <route>" for a route not named here). */
		action: text("action").notNull(),
		organizationId: text("organization_id"),
		/** The event's svixId or the outbox row's id. */
		targetId: text("target_id"),
		/** JSON: what the request asked (an override's fields). */
		detail: text("detail"),
		status: integer("status").notNull(),
		requestId: text("request_id").notNull(),
	},
	(t) => [index("operator_actions_at_idx").on(t.at, t.id), index("operator_actions_org_idx").on(t.organizationId, t.at, t.id)],
);
