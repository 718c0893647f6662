/**
 * Tenant store schema v1: the tenant's own tables, as the shared D1 database had them (same names and
 * columns, so the store's services run unchanged on either), with every list index ending in the
 * tie-breaker (`id`) so a keyset page is an index range at any depth; plus the store's own metadata.
 * `organization_id` stays on every row: the store holds one organization, and the column keeps the
 * services' scoping, the export format and the upgrade job's row-for-row copy identical to D1's.
 */
export const v1: string[] = [
	"CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)",
	// The directory's answer for one principal (organization summary, membership, role permissions,
	// seat standing), kept until the Clerk consumer or an operator says it changed (or it is 5 minutes old).
	"CREATE TABLE IF NOT EXISTS mirror_access (principal TEXT PRIMARY KEY NOT NULL, lookup TEXT NOT NULL, refreshed_at INTEGER NOT NULL)",
	`CREATE TABLE \`categories\` (
	\`id\` text PRIMARY KEY NOT NULL,
	\`organization_id\` text NOT NULL,
	\`name\` text NOT NULL,
	\`slug\` text NOT NULL,
	\`version\` integer DEFAULT 1 NOT NULL,
	\`created_at\` integer NOT NULL,
	\`updated_at\` integer NOT NULL
)`,
	`CREATE UNIQUE INDEX \`categories_org_slug_uq\` ON \`categories\` (\`organization_id\`,\`slug\`)`,
	`CREATE INDEX \`categories_org_created_idx\` ON \`categories\` (\`organization_id\`,\`created_at\`,\`id\`)`,
	`CREATE TABLE \`idempotency_keys\` (
	\`organization_id\` text NOT NULL,
	\`key\` text NOT NULL,
	\`user_id\` text NOT NULL,
	\`request_hash\` text NOT NULL,
	\`state\` text NOT NULL,
	\`status\` integer,
	\`response_body\` text,
	\`created_at\` integer NOT NULL, \`lease_until\` integer, \`claim_token\` text,
	PRIMARY KEY(\`organization_id\`, \`key\`)
)`,
	`CREATE INDEX \`idempotency_keys_org_created_idx\` ON \`idempotency_keys\` (\`organization_id\`,\`created_at\`)`,
	`CREATE TABLE \`order_items\` (
	\`id\` text PRIMARY KEY NOT NULL,
	\`organization_id\` text NOT NULL,
	\`order_id\` text NOT NULL,
	\`product_id\` text NOT NULL,
	\`variant_id\` text,
	\`name\` text NOT NULL,
	\`sku\` text NOT NULL,
	\`unit_price_minor\` integer NOT NULL,
	\`quantity\` integer NOT NULL,
	\`line_total_minor\` integer NOT NULL
)`,
	`CREATE INDEX \`order_items_org_order_idx\` ON \`order_items\` (\`organization_id\`,\`order_id\`)`,
	`CREATE TABLE \`order_status_history\` (
	\`id\` text PRIMARY KEY NOT NULL,
	\`organization_id\` text NOT NULL,
	\`order_id\` text NOT NULL,
	\`from_status\` text,
	\`to_status\` text NOT NULL,
	\`changed_by\` text NOT NULL,
	\`note\` text,
	\`at\` integer NOT NULL
)`,
	`CREATE INDEX \`order_status_history_org_order_idx\` ON \`order_status_history\` (\`organization_id\`,\`order_id\`,\`at\`)`,
	`CREATE TABLE \`orders\` (
	\`id\` text PRIMARY KEY NOT NULL,
	\`organization_id\` text NOT NULL,
	\`status\` text NOT NULL,
	\`currency\` text NOT NULL,
	\`total_minor\` integer NOT NULL,
	\`customer_email\` text,
	\`created_by\` text NOT NULL,
	\`version\` integer DEFAULT 1 NOT NULL,
	\`created_at\` integer NOT NULL,
	\`updated_at\` integer NOT NULL
)`,
	`CREATE INDEX \`orders_org_created_idx\` ON \`orders\` (\`organization_id\`,\`created_at\`,\`id\`)`,
	`CREATE INDEX \`orders_org_status_idx\` ON \`orders\` (\`organization_id\`,\`status\`,\`created_at\`,\`id\`)`,
	`CREATE TABLE \`products\` (
	\`id\` text PRIMARY KEY NOT NULL,
	\`organization_id\` text NOT NULL,
	\`category_id\` text,
	\`name\` text NOT NULL,
	\`sku\` text NOT NULL,
	\`description\` text,
	\`price_minor\` integer NOT NULL,
	\`currency\` text NOT NULL,
	\`status\` text NOT NULL,
	\`stock\` integer DEFAULT 0 NOT NULL,
	\`version\` integer DEFAULT 1 NOT NULL,
	\`created_at\` integer NOT NULL,
	\`updated_at\` integer NOT NULL,
	CONSTRAINT "products_stock_nonneg" CHECK("products"."stock" >= 0),
	CONSTRAINT "products_price_nonneg" CHECK("products"."price_minor" >= 0)
)`,
	`CREATE UNIQUE INDEX \`products_org_sku_uq\` ON \`products\` (\`organization_id\`,\`sku\`)`,
	`CREATE INDEX \`products_org_created_idx\` ON \`products\` (\`organization_id\`,\`created_at\`,\`id\`)`,
	`CREATE INDEX \`products_org_status_idx\` ON \`products\` (\`organization_id\`,\`status\`,\`created_at\`,\`id\`)`,
	`CREATE INDEX \`products_org_category_idx\` ON \`products\` (\`organization_id\`,\`category_id\`,\`created_at\`,\`id\`)`,
	`CREATE TABLE \`variants\` (
	\`id\` text PRIMARY KEY NOT NULL,
	\`organization_id\` text NOT NULL,
	\`product_id\` text NOT NULL,
	\`name\` text NOT NULL,
	\`sku\` text NOT NULL,
	\`price_minor\` integer,
	\`stock\` integer DEFAULT 0 NOT NULL,
	\`version\` integer DEFAULT 1 NOT NULL,
	\`created_at\` integer NOT NULL,
	\`updated_at\` integer NOT NULL,
	CONSTRAINT "variants_stock_nonneg" CHECK("variants"."stock" >= 0)
)`,
	`CREATE UNIQUE INDEX \`variants_org_sku_uq\` ON \`variants\` (\`organization_id\`,\`sku\`)`,
	`CREATE INDEX \`variants_org_product_idx\` ON \`variants\` (\`organization_id\`,\`product_id\`,\`created_at\`)`,
	`CREATE TABLE \`audit_logs\` (
	\`id\` text PRIMARY KEY NOT NULL,
	\`organization_id\` text NOT NULL,
	\`seq\` integer NOT NULL,
	\`event_id\` text NOT NULL,
	\`actor_type\` text NOT NULL,
	\`actor_id\` text,
	\`action\` text NOT NULL,
	\`target_type\` text,
	\`target_id\` text,
	\`before\` text,
	\`after\` text,
	\`ip\` text,
	\`country\` text,
	\`user_agent\` text,
	\`request_id\` text,
	\`occurred_at\` integer NOT NULL,
	\`prev_hash\` text NOT NULL,
	\`hash\` text NOT NULL
)`,
	`CREATE UNIQUE INDEX \`audit_logs_org_seq_uq\` ON \`audit_logs\` (\`organization_id\`,\`seq\`)`,
	`CREATE UNIQUE INDEX \`audit_logs_org_event_uq\` ON \`audit_logs\` (\`organization_id\`,\`event_id\`)`,
	`CREATE INDEX \`audit_logs_org_action_idx\` ON \`audit_logs\` (\`organization_id\`,\`action\`,\`seq\`)`,
	`CREATE INDEX \`audit_logs_org_actor_idx\` ON \`audit_logs\` (\`organization_id\`,\`actor_id\`,\`seq\`)`,
	`CREATE INDEX \`audit_logs_org_time_idx\` ON \`audit_logs\` (\`organization_id\`,\`occurred_at\`)`,
	`CREATE TABLE \`outbox\` (
	\`id\` text PRIMARY KEY NOT NULL,
	\`organization_id\` text,
	\`body\` text NOT NULL,
	\`created_at\` integer NOT NULL,
	\`attempts\` integer DEFAULT 0 NOT NULL
, \`status\` text DEFAULT 'pending' NOT NULL, \`last_error\` text, \`updated_at\` integer)`,
	`CREATE TABLE \`webhook_deliveries\` (
	\`id\` text PRIMARY KEY NOT NULL,
	\`organization_id\` text NOT NULL,
	\`endpoint_id\` text NOT NULL,
	\`event_id\` text NOT NULL,
	\`event_type\` text NOT NULL,
	\`payload\` text NOT NULL,
	\`status\` text NOT NULL,
	\`attempts\` integer DEFAULT 0 NOT NULL,
	\`last_status_code\` integer,
	\`last_error\` text,
	\`next_attempt_at\` integer,
	\`created_at\` integer NOT NULL,
	\`updated_at\` integer NOT NULL
)`,
	`CREATE INDEX \`webhook_deliveries_org_endpoint_idx\` ON \`webhook_deliveries\` (\`organization_id\`,\`endpoint_id\`,\`created_at\`,\`id\`)`,
	`CREATE TABLE \`webhook_endpoints\` (
	\`id\` text PRIMARY KEY NOT NULL,
	\`organization_id\` text NOT NULL,
	\`url\` text NOT NULL,
	\`event_types\` text NOT NULL,
	\`secret\` text NOT NULL,
	\`status\` text NOT NULL,
	\`consecutive_failures\` integer DEFAULT 0 NOT NULL,
	\`disabled_reason\` text,
	\`version\` integer DEFAULT 1 NOT NULL,
	\`created_at\` integer NOT NULL,
	\`updated_at\` integer NOT NULL
)`,
	`CREATE INDEX \`webhook_endpoints_org_idx\` ON \`webhook_endpoints\` (\`organization_id\`,\`created_at\`,\`id\`)`,
	`CREATE TRIGGER \`audit_logs_no_update\` BEFORE UPDATE ON \`audit_logs\` BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only'); END`,
	`CREATE TRIGGER \`audit_logs_no_delete\` BEFORE DELETE ON \`audit_logs\` BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only'); END`,
	`CREATE INDEX \`webhook_deliveries_org_event_idx\` ON \`webhook_deliveries\` (\`organization_id\`,\`event_id\`,\`endpoint_id\`)`,
	`CREATE VIRTUAL TABLE \`products_fts\` USING fts5(\`name\`, \`product_id\` UNINDEXED, \`organization_id\` UNINDEXED, tokenize='trigram')`,
	`CREATE TRIGGER \`products_fts_ai\` AFTER INSERT ON \`products\` BEGIN
	INSERT INTO \`products_fts\` (\`rowid\`, \`name\`, \`product_id\`, \`organization_id\`) VALUES (new.\`rowid\`, new.\`name\`, new.\`id\`, new.\`organization_id\`);
END`,
	`CREATE TRIGGER \`products_fts_ad\` AFTER DELETE ON \`products\` BEGIN
	DELETE FROM \`products_fts\` WHERE \`rowid\` = old.\`rowid\`;
END`,
	`CREATE TRIGGER \`products_fts_au\` AFTER UPDATE OF \`name\`, \`id\`, \`organization_id\` ON \`products\` BEGIN
	DELETE FROM \`products_fts\` WHERE \`rowid\` = old.\`rowid\`;
	INSERT INTO \`products_fts\` (\`rowid\`, \`name\`, \`product_id\`, \`organization_id\`) VALUES (new.\`rowid\`, new.\`name\`, new.\`id\`, new.\`organization_id\`);
END`,
	`CREATE TABLE \`audit_checkpoints\` (
	\`organization_id\` text PRIMARY KEY NOT NULL,
	\`seq\` integer NOT NULL,
	\`hash\` text NOT NULL,
	\`verified_at\` integer NOT NULL
)`,
	`CREATE INDEX \`outbox_status_created_idx\` ON \`outbox\` (\`status\`,\`created_at\`)`,
	`CREATE INDEX \`webhook_deliveries_updated_idx\` ON \`webhook_deliveries\` (\`updated_at\`)`,
	`CREATE INDEX \`idempotency_keys_created_idx\` ON \`idempotency_keys\` (\`created_at\`)`,];
