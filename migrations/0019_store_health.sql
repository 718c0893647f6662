-- Operator health (GET /api/admin/health) counted the tenant-events outbox and the failing or disabled
-- webhook endpoints in the shared tables only, so tenants served by their own store always counted 0. Each
-- store now reports its figures here when they change (src/tenant-store/object.ts reportHealth): one row
-- per store with something to report, none for a healthy one.
CREATE TABLE `store_health` (
	`organization_id` text PRIMARY KEY NOT NULL,
	`outbox_pending` integer NOT NULL,
	`outbox_oldest` integer,
	`outbox_failed` integer NOT NULL,
	`endpoints_failing` integer NOT NULL,
	`endpoints_disabled` integer NOT NULL,
	`reported_at` integer NOT NULL
);
