-- An operator's offboarding (DELETE /api/admin/orgs/:orgId) wipes the tenant's store; the rows the shared D1
-- tenant tables still hold for it (a tenant never moved, or moved and kept there as a fallback) are deleted
-- by the cron, in chunks (src/tenant-store/purge.ts). A row is queued with the deletion and removed once
-- every shared tenant table is empty of the organization. Organizations offboarded before this table are
-- queued here once.
CREATE TABLE `shared_purges` (
	`organization_id` text PRIMARY KEY NOT NULL,
	`next_table` integer DEFAULT 0 NOT NULL,
	`deleted_rows` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);--> statement-breakpoint
INSERT INTO `shared_purges` (`organization_id`, `created_at`, `updated_at`)
	SELECT `id`, CAST(unixepoch('subsec') * 1000 AS INTEGER), CAST(unixepoch('subsec') * 1000 AS INTEGER)
	FROM `organizations` WHERE `store_state` = 'deleted';--> statement-breakpoint
-- audit_logs stays append-only, except for an offboarded organization's entries: erased with the rest of
-- its data, as its store's chain is.
DROP TRIGGER `audit_logs_no_delete`;--> statement-breakpoint
CREATE TRIGGER `audit_logs_no_delete` BEFORE DELETE ON `audit_logs`
	WHEN NOT EXISTS (SELECT 1 FROM `organizations` WHERE `id` = OLD.`organization_id` AND `store_state` = 'deleted')
	BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only'); END;
