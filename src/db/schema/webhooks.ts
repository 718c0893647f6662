import { index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

// Incoming provider webhooks (Clerk, Razorpay, Stripe): every delivery, with its processing outcome.

/** Raw identity events: every webhook payload, with its processing outcome. */
export const events = sqliteTable(
	"events",
	{
		svixId: text("svix_id").primaryKey(),
		organizationId: text("organization_id"),
		source: text("source").notNull().default("clerk"),
		type: text("type").notNull(),
		entityId: text("entity_id"),
		payload: text("payload").notNull(),
		eventTimestamp: integer("event_timestamp").notNull(),
		receivedAt: integer("received_at").notNull(),
		processedAt: integer("processed_at"),
		outcome: text("outcome", {
			enum: ["queued", "processed", "stale", "ignored", "failed"],
		}).notNull(),
		attempts: integer("attempts").notNull().default(0),
		error: text("error"),
	},
	(t) => [
		index("events_org_received_idx").on(t.organizationId, t.receivedAt, t.svixId),
		// Ends in the list's tie-breaker (svix_id), so ?type= pages are an index range (migration 0016).
		index("events_org_type_idx").on(t.organizationId, t.type, t.receivedAt, t.svixId),
		index("events_outcome_idx").on(t.outcome),
	],
);

export type EventRow = typeof events.$inferSelect;
