-- Issue 19: tenant stores. Each organization's data moves into its own SQLite Durable Object; D1 stays the
-- directory. Organizations that exist now keep being served from the shared tables ('d1') until the upgrade
-- job (src/tenant-store/upgrade.ts) moves them; organizations created from now on have no value here
-- (NULL), which means "its own store".
ALTER TABLE `organizations` ADD `store_state` text;--> statement-breakpoint
ALTER TABLE `organizations` ADD `store_schema_version` integer;--> statement-breakpoint
UPDATE `organizations` SET `store_state` = 'd1';--> statement-breakpoint
-- Progress of the upgrade job, one row per organization being moved (resumable: it restarts from `phase`).
CREATE TABLE `store_upgrades` (
	`organization_id` text PRIMARY KEY NOT NULL,
	`phase` text NOT NULL,
	`copied` integer DEFAULT 0 NOT NULL,
	`detail` text,
	`started_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
