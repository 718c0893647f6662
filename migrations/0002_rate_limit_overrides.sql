ALTER TABLE `organizations` ADD `rate_limit_per_minute` integer;--> statement-breakpoint
ALTER TABLE `organizations` ADD `user_rate_limit_per_minute` integer;