-- GET /api/orgs/:orgId/members read two rows per member, its membership and its user (joined for the email
-- and names, and to leave out deleted users): 43 rows for a page of 20 (`npm run bench -- scale`). The
-- user's fields the list shows, and its deletion, are now copied onto each of its memberships, kept
-- current by the Clerk consumer after every write to the user (src/services/clerk-sync/shared.ts
-- syncMemberUser): the list reads memberships alone, through an index of active members only, so departed
-- members and deleted users are not read either: a page reads limit + 1 rows at any depth.
ALTER TABLE `memberships` ADD `user_email` text;--> statement-breakpoint
ALTER TABLE `memberships` ADD `user_first_name` text;--> statement-breakpoint
ALTER TABLE `memberships` ADD `user_last_name` text;--> statement-breakpoint
ALTER TABLE `memberships` ADD `user_deleted_at` integer;--> statement-breakpoint
UPDATE `memberships` SET `user_email` = u.`email`, `user_first_name` = u.`first_name`, `user_last_name` = u.`last_name`,
	`user_deleted_at` = u.`deleted_at`
FROM `users` u WHERE u.`id` = `memberships`.`user_id`;--> statement-breakpoint
CREATE INDEX `memberships_org_active_idx` ON `memberships` (`organization_id`,`created_at`,`id`)
	WHERE deleted_at IS NULL AND user_deleted_at IS NULL;
