import { integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

// Usage metering.

/** Daily usage rollups written behind from the UsageCounter Durable Object (absolute counts). */
export const usageDaily = sqliteTable(
	"usage_daily",
	{
		organizationId: text("organization_id").notNull(),
		day: text("day").notNull(),
		metric: text("metric").notNull(),
		count: integer("count").notNull(),
		updatedAt: integer("updated_at").notNull(),
	},
	(t) => [primaryKey({ columns: [t.organizationId, t.day, t.metric] })],
);
