import { sql } from "drizzle-orm";
import { check, index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

// Tenant-owned business tables. Every row carries organization_id and every index starts with it;
// the store service is the only code that reads or writes them. Idempotency-Key records live here too.

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

/**
 * The product columns, shared with the tenant store's search index (services/store/catalogue.ts
 * `productsSearch`, store schema v3), which declares the same columns over this table.
 */
export const productColumns = {
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
};

export const products = sqliteTable(
	"products",
	productColumns,
	// Searched through products_fts (D1 migration 0008, store schema v1): an FTS5 trigram index over name,
	// with product_id and organization_id UNINDEXED, rowid = products.rowid, kept in sync by triggers; in a
	// tenant store, through products_search (store schema v3, external content over this table). drizzle
	// cannot create virtual tables: services/store/catalogue.ts declares and queries them.
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
		/** A pending claim is held until then (ms); a retry after it takes the key over. Null on old rows: created_at + the lease. */
		leaseUntil: integer("lease_until"),
		/** The current claim's token: only its holder may store the response or release the key. */
		claimToken: text("claim_token"),
	},
	(t) => [
		primaryKey({ columns: [t.organizationId, t.key] }),
		index("idempotency_keys_org_created_idx").on(t.organizationId, t.createdAt),
	],
);
