-- The Clerk id of a permission whose row was seeded here under another id (the catalogue of
-- migrations/0001: perm_members_read, …): a permission.created/updated or a role's permission list names
-- it by key and gives its Clerk id, which permission.deleted (an id only) is then matched by.
ALTER TABLE `permissions` ADD `clerk_id` text;--> statement-breakpoint
CREATE INDEX `permissions_clerk_id_idx` ON `permissions` (`clerk_id`);
