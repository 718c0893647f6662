-- Stripe Checkout Sessions an organization opened that are not known to be settled (expired, or paid for a
-- subscription that has since ended). A new Checkout expires every older one of its organization
-- (src/services/billing.ts startCheckout), so two Checkouts opened side by side cannot both be paid: that
-- made two live subscriptions, billed twice. `seq` orders them (AUTOINCREMENT: never reused).
CREATE TABLE `checkout_sessions` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`session_id` text NOT NULL,
	`organization_id` text NOT NULL,
	`created_at` integer NOT NULL
);--> statement-breakpoint
CREATE UNIQUE INDEX `checkout_sessions_session_id_unique` ON `checkout_sessions` (`session_id`);--> statement-breakpoint
CREATE INDEX `checkout_sessions_org_idx` ON `checkout_sessions` (`organization_id`,`seq`);
