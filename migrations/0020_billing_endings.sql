-- Organizations deleted (Clerk's organization.deleted, or an operator's offboarding) whose billing at Stripe
-- may not have ended yet: their open Checkout Sessions are to be expired and every subscription Stripe may
-- still bill canceled (src/services/billing-endings.ts, run by the cron). A row is written with the deletion
-- (and again when a subscription event arrives for a deleted organization) and removed once nothing of the
-- organization's is left to end. Deleted organizations from before this table are queued here once.
CREATE TABLE `billing_endings` (
	`organization_id` text PRIMARY KEY NOT NULL,
	`created_at` integer NOT NULL
);--> statement-breakpoint
INSERT INTO `billing_endings` (`organization_id`, `created_at`)
	SELECT `id`, CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM `organizations`
	WHERE `deleted_at` IS NOT NULL AND (
		`id` IN (SELECT `organization_id` FROM `subscriptions` WHERE `provider` = 'stripe' AND `status` NOT IN ('canceled', 'incomplete_expired'))
		OR `id` IN (SELECT `organization_id` FROM `checkout_sessions`));
