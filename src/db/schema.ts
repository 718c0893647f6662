import { sql } from "drizzle-orm";
import { check, index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/**
 * Ordering columns shared by every table mirrored from Clerk.
 * `sourceUpdatedAt` is Clerk's own clock (ms) for the last applied change: an
 * event older than it never overwrites the row (events arrive out of order).
 * `sourceUpdatedAt = 0` marks a placeholder created before its real event.
 */
const mirrored = {
	sourceUpdatedAt: integer("source_updated_at").notNull().default(0),
	createdAt: integer("created_at").notNull(),
	updatedAt: integer("updated_at").notNull(),
	deletedAt: integer("deleted_at"),
};

export const users = sqliteTable(
	"users",
	{
		id: text("id").primaryKey(),
		email: text("email"),
		firstName: text("first_name"),
		lastName: text("last_name"),
		imageUrl: text("image_url"),
		...mirrored,
	},
	(t) => [index("users_email_idx").on(t.email)],
);

export const organizations = sqliteTable(
	"organizations",
	{
		id: text("id").primaryKey(),
		name: text("name"),
		slug: text("slug"),
		imageUrl: text("image_url"),
		plan: text("plan").notNull().default("free"),
		/** Per-organization overrides of the plan's rate limits (requests per minute); null = plan default. */
		rateLimitPerMinute: integer("rate_limit_per_minute"),
		/** Per-organization override of the plan's monthly API quota; null = plan default. */
		monthlyQuota: integer("monthly_quota"),
		userRateLimitPerMinute: integer("user_rate_limit_per_minute"),
		...mirrored,
	},
	(t) => [index("organizations_slug_idx").on(t.slug)],
);

/** System roles have organizationId = null; custom roles may be instance-wide (null) or per organization. */
export const roles = sqliteTable(
	"roles",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id"),
		key: text("key").notNull(),
		name: text("name").notNull(),
		description: text("description"),
		isSystem: integer("is_system", { mode: "boolean" }).notNull().default(false),
		...mirrored,
	},
	(t) => [
		uniqueIndex("roles_org_key_uq").on(t.organizationId, t.key),
		uniqueIndex("roles_global_key_uq").on(t.key).where(sql`organization_id IS NULL`),
	],
);

export const permissions = sqliteTable("permissions", {
	id: text("id").primaryKey(),
	key: text("key").notNull().unique(),
	name: text("name").notNull(),
	description: text("description"),
	isSystem: integer("is_system", { mode: "boolean" }).notNull().default(false),
	...mirrored,
});

export const rolePermissions = sqliteTable(
	"role_permissions",
	{
		roleId: text("role_id")
			.notNull()
			.references(() => roles.id, { onDelete: "cascade" }),
		permissionId: text("permission_id")
			.notNull()
			.references(() => permissions.id, { onDelete: "cascade" }),
	},
	(t) => [primaryKey({ columns: [t.roleId, t.permissionId] }), index("role_permissions_permission_idx").on(t.permissionId)],
);

export const memberships = sqliteTable(
	"memberships",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id")
			.notNull()
			.references(() => organizations.id),
		userId: text("user_id")
			.notNull()
			.references(() => users.id),
		role: text("role").notNull(),
		...mirrored,
	},
	(t) => [
		uniqueIndex("memberships_org_user_uq").on(t.organizationId, t.userId),
		index("memberships_org_created_idx").on(t.organizationId, t.createdAt, t.id),
		index("memberships_user_idx").on(t.userId),
	],
);

export const invitations = sqliteTable(
	"invitations",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id").notNull(),
		email: text("email").notNull(),
		role: text("role").notNull(),
		status: text("status").notNull(),
		...mirrored,
	},
	(t) => [index("invitations_org_idx").on(t.organizationId, t.createdAt)],
);

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
		index("events_org_type_idx").on(t.organizationId, t.type, t.receivedAt),
		index("events_outcome_idx").on(t.outcome),
	],
);

export type User = typeof users.$inferSelect;
export type Organization = typeof organizations.$inferSelect;
export type Membership = typeof memberships.$inferSelect;
export type EventRow = typeof events.$inferSelect;

// ---------------------------------------------------------------------------------------------
// Tenant-owned business tables. Every row carries organization_id and every index starts with it;
// src/services/tenant-store.ts is the only code that reads or writes them.
// ---------------------------------------------------------------------------------------------

const tenantTimestamps = {
	version: integer("version").notNull().default(1),
	createdAt: integer("created_at").notNull(),
	updatedAt: integer("updated_at").notNull(),
};

export const categories = sqliteTable(
	"categories",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id").notNull(),
		name: text("name").notNull(),
		slug: text("slug").notNull(),
		...tenantTimestamps,
	},
	(t) => [
		uniqueIndex("categories_org_slug_uq").on(t.organizationId, t.slug),
		index("categories_org_created_idx").on(t.organizationId, t.createdAt, t.id),
	],
);

export const products = sqliteTable(
	"products",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id").notNull(),
		categoryId: text("category_id"),
		name: text("name").notNull(),
		sku: text("sku").notNull(),
		description: text("description"),
		priceMinor: integer("price_minor").notNull(),
		currency: text("currency").notNull(),
		status: text("status", { enum: ["draft", "active", "archived"] }).notNull(),
		stock: integer("stock").notNull().default(0),
		...tenantTimestamps,
	},
	(t) => [
		uniqueIndex("products_org_sku_uq").on(t.organizationId, t.sku),
		index("products_org_created_idx").on(t.organizationId, t.createdAt, t.id),
		index("products_org_status_idx").on(t.organizationId, t.status, t.createdAt),
		index("products_org_category_idx").on(t.organizationId, t.categoryId),
		check("products_stock_nonneg", sql`${t.stock} >= 0`),
		check("products_price_nonneg", sql`${t.priceMinor} >= 0`),
	],
);

export const variants = sqliteTable(
	"variants",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id").notNull(),
		productId: text("product_id").notNull(),
		name: text("name").notNull(),
		sku: text("sku").notNull(),
		priceMinor: integer("price_minor"),
		stock: integer("stock").notNull().default(0),
		...tenantTimestamps,
	},
	(t) => [
		uniqueIndex("variants_org_sku_uq").on(t.organizationId, t.sku),
		index("variants_org_product_idx").on(t.organizationId, t.productId, t.createdAt),
		check("variants_stock_nonneg", sql`${t.stock} >= 0`),
	],
);

export const orders = sqliteTable(
	"orders",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id").notNull(),
		status: text("status", { enum: ["pending", "paid", "fulfilled", "cancelled"] }).notNull(),
		currency: text("currency").notNull(),
		totalMinor: integer("total_minor").notNull(),
		customerEmail: text("customer_email"),
		createdBy: text("created_by").notNull(),
		...tenantTimestamps,
	},
	(t) => [
		index("orders_org_created_idx").on(t.organizationId, t.createdAt, t.id),
		index("orders_org_status_idx").on(t.organizationId, t.status, t.createdAt),
	],
);

export const orderItems = sqliteTable(
	"order_items",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id").notNull(),
		orderId: text("order_id").notNull(),
		productId: text("product_id").notNull(),
		variantId: text("variant_id"),
		/** Copied at order time: later product edits never change an order. */
		name: text("name").notNull(),
		sku: text("sku").notNull(),
		unitPriceMinor: integer("unit_price_minor").notNull(),
		quantity: integer("quantity").notNull(),
		lineTotalMinor: integer("line_total_minor").notNull(),
	},
	(t) => [index("order_items_org_order_idx").on(t.organizationId, t.orderId)],
);

export const orderStatusHistory = sqliteTable(
	"order_status_history",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id").notNull(),
		orderId: text("order_id").notNull(),
		fromStatus: text("from_status"),
		toStatus: text("to_status").notNull(),
		changedBy: text("changed_by").notNull(),
		note: text("note"),
		at: integer("at").notNull(),
	},
	(t) => [index("order_status_history_org_order_idx").on(t.organizationId, t.orderId, t.at)],
);

/** Idempotency-Key records for POSTs: one per (organization, key); completed ones replay their response. */
export const idempotencyKeys = sqliteTable(
	"idempotency_keys",
	{
		organizationId: text("organization_id").notNull(),
		key: text("key").notNull(),
		userId: text("user_id").notNull(),
		requestHash: text("request_hash").notNull(),
		state: text("state", { enum: ["pending", "done"] }).notNull(),
		status: integer("status"),
		responseBody: text("response_body"),
		createdAt: integer("created_at").notNull(),
	},
	(t) => [
		primaryKey({ columns: [t.organizationId, t.key] }),
		index("idempotency_keys_org_created_idx").on(t.organizationId, t.createdAt),
	],
);

// --- billing ----------------------------------------------------------------------------------

/** A Razorpay order created for an organization (POST /api/payments/orders). */
export const paymentOrders = sqliteTable(
	"payment_orders",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id").notNull(),
		razorpayOrderId: text("razorpay_order_id").notNull().unique(),
		amount: integer("amount").notNull(),
		currency: text("currency").notNull(),
		receipt: text("receipt"),
		status: text("status", { enum: ["CREATED", "PAID", "FAILED"] }).notNull(),
		createdBy: text("created_by").notNull(),
		createdAt: integer("created_at").notNull(),
		updatedAt: integer("updated_at").notNull(),
	},
	(t) => [index("payment_orders_org_created_idx").on(t.organizationId, t.createdAt)],
);

/** A payment against a payment order, from /api/payments/verify or a Razorpay webhook (one row per payment id). */
export const paymentTransactions = sqliteTable(
	"payment_transactions",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id").notNull(),
		paymentOrderId: text("payment_order_id").notNull(),
		razorpayPaymentId: text("razorpay_payment_id").notNull().unique(),
		amount: integer("amount"),
		currency: text("currency"),
		status: text("status").notNull(),
		source: text("source", { enum: ["verify", "webhook"] }).notNull(),
		createdAt: integer("created_at").notNull(),
		updatedAt: integer("updated_at").notNull(),
	},
	(t) => [index("payment_transactions_org_order_idx").on(t.organizationId, t.paymentOrderId)],
);

/** The organization's subscription (Stripe); the plan it grants is copied to organizations.plan. */
export const subscriptions = sqliteTable(
	"subscriptions",
	{
		organizationId: text("organization_id").notNull(),
		provider: text("provider").notNull().default("stripe"),
		customerId: text("customer_id"),
		/** One row per provider subscription (Stripe's sub_…); an organization may have several. */
		subscriptionId: text("subscription_id").primaryKey(),
		plan: text("plan").notNull(),
		status: text("status").notNull(),
		currentPeriodEnd: integer("current_period_end"),
		/** Provider clock (ms) of the last applied event: older events never overwrite newer state. */
		sourceUpdatedAt: integer("source_updated_at").notNull(),
		updatedAt: integer("updated_at").notNull(),
	},
	(t) => [index("subscriptions_customer_idx").on(t.customerId), index("subscriptions_org_idx").on(t.organizationId)],
);

// --- audit log, usage, outgoing webhooks ----------------------------------------------------------

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

/** Messages that could not be handed to the tenant-events queue; the cron handler re-sends them. */
export const outbox = sqliteTable("outbox", {
	id: text("id").primaryKey(),
	organizationId: text("organization_id"),
	body: text("body").notNull(),
	createdAt: integer("created_at").notNull(),
	attempts: integer("attempts").notNull().default(0),
});
