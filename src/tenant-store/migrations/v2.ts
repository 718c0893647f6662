/**
 * Tenant store schema v2 (expand only: v1 code keeps running on a v2 store). Maintained row counts:
 * one row per counted table, kept by triggers in the same transaction as the insert or delete, so a
 * count is one indexed read instead of COUNT(*) over the table (the export and the upgrade job's
 * verification read them; GET /api/admin/orgs/:orgId reports them).
 */
const counted = ["categories", "products", "variants", "orders", "audit_logs", "webhook_endpoints", "webhook_deliveries"];

export const v2: string[] = [
	"CREATE TABLE store_counters (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL DEFAULT 0)",
	...counted.flatMap((t) => [
		`INSERT INTO store_counters (name, value) SELECT '${t}', COUNT(*) FROM ${t}`,
		`CREATE TRIGGER ${t}_count_ai AFTER INSERT ON ${t} BEGIN UPDATE store_counters SET value = value + 1 WHERE name = '${t}'; END`,
		`CREATE TRIGGER ${t}_count_ad AFTER DELETE ON ${t} BEGIN UPDATE store_counters SET value = value - 1 WHERE name = '${t}'; END`,
	]),
];

export const COUNTED_TABLES = counted;
