CREATE TABLE `payment_orders` (
	`id` text PRIMARY KEY NOT NULL,
	`organization_id` text NOT NULL,
	`razorpay_order_id` text NOT NULL,
	`amount` integer NOT NULL,
	`currency` text NOT NULL,
	`receipt` text,
	`status` text NOT NULL,
	`created_by` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `payment_orders_razorpay_order_id_unique` ON `payment_orders` (`razorpay_order_id`);--> statement-breakpoint
CREATE INDEX `payment_orders_org_created_idx` ON `payment_orders` (`organization_id`,`created_at`);--> statement-breakpoint
CREATE TABLE `payment_transactions` (
	`id` text PRIMARY KEY NOT NULL,
	`organization_id` text NOT NULL,
	`payment_order_id` text NOT NULL,
	`razorpay_payment_id` text NOT NULL,
	`amount` integer,
	`currency` text,
	`status` text NOT NULL,
	`source` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `payment_transactions_razorpay_payment_id_unique` ON `payment_transactions` (`razorpay_payment_id`);--> statement-breakpoint
CREATE INDEX `payment_transactions_org_order_idx` ON `payment_transactions` (`organization_id`,`payment_order_id`);--> statement-breakpoint
CREATE TABLE `subscriptions` (
	`organization_id` text PRIMARY KEY NOT NULL,
	`provider` text DEFAULT 'stripe' NOT NULL,
	`customer_id` text,
	`subscription_id` text,
	`plan` text NOT NULL,
	`status` text NOT NULL,
	`current_period_end` integer,
	`source_updated_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `subscriptions_customer_idx` ON `subscriptions` (`customer_id`);