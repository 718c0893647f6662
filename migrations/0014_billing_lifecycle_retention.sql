-- Issue 15, subscription lifecycle: what Stripe says about the end of a subscription, so the plan can
-- follow it without waiting for an event that may be lost (services/billing-periods.ts, run by the cron).
ALTER TABLE `subscriptions` ADD `cancel_at_period_end` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `subscriptions` ADD `trial_end` integer;--> statement-breakpoint
ALTER TABLE `subscriptions` ADD `past_due_since` integer;--> statement-breakpoint
CREATE INDEX `subscriptions_status_period_idx` ON `subscriptions` (`status`,`current_period_end`);--> statement-breakpoint
-- Issue 15, retention (services/retention.ts): the cron prunes by age, oldest first, in bounded batches.
CREATE INDEX `events_received_idx` ON `events` (`received_at`);--> statement-breakpoint
CREATE INDEX `webhook_deliveries_updated_idx` ON `webhook_deliveries` (`updated_at`);--> statement-breakpoint
CREATE INDEX `idempotency_keys_created_idx` ON `idempotency_keys` (`created_at`);
