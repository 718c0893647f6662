-- Transactional outbox: rows are written in the business change's own batch and relayed; a row that
-- keeps coming back from the dead-letter queue ends 'failed' after a bounded number of relays.
ALTER TABLE `outbox` ADD `status` text DEFAULT 'pending' NOT NULL;--> statement-breakpoint
ALTER TABLE `outbox` ADD `last_error` text;--> statement-breakpoint
ALTER TABLE `outbox` ADD `updated_at` integer;--> statement-breakpoint
CREATE INDEX `outbox_status_created_idx` ON `outbox` (`status`,`created_at`);--> statement-breakpoint
-- Operator overrides: suspension and the tenant's data region.
ALTER TABLE `organizations` ADD `suspended_at` integer;--> statement-breakpoint
ALTER TABLE `organizations` ADD `data_region` text DEFAULT 'default' NOT NULL;
