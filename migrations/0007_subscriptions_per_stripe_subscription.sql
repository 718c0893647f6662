-- Issue 16 item 9: one row per Stripe subscription (keyed by its id), several per organization.
-- The organization's plan is the best plan among its live subscriptions (services/billing-sync.ts).
-- Existing rows (one per organization) are kept; a row that never learned its subscription id (only
-- checkout.session.completed seen) keeps the customer -> organization mapping under a placeholder id.
-- Nothing references subscriptions, so no foreign-key pragma is needed for the table swap.
CREATE TABLE `__new_subscriptions` (
	`organization_id` text NOT NULL,
	`provider` text DEFAULT 'stripe' NOT NULL,
	`customer_id` text,
	`subscription_id` text PRIMARY KEY NOT NULL,
	`plan` text NOT NULL,
	`status` text NOT NULL,
	`current_period_end` integer,
	`source_updated_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
INSERT INTO `__new_subscriptions`("organization_id", "provider", "customer_id", "subscription_id", "plan", "status", "current_period_end", "source_updated_at", "updated_at") SELECT "organization_id", "provider", "customer_id", coalesce("subscription_id", 'pending_' || "organization_id"), "plan", "status", "current_period_end", "source_updated_at", "updated_at" FROM `subscriptions`;--> statement-breakpoint
DROP TABLE `subscriptions`;--> statement-breakpoint
ALTER TABLE `__new_subscriptions` RENAME TO `subscriptions`;--> statement-breakpoint
CREATE INDEX `subscriptions_customer_idx` ON `subscriptions` (`customer_id`);--> statement-breakpoint
CREATE INDEX `subscriptions_org_idx` ON `subscriptions` (`organization_id`);
