-- Issue 12, session revocation: sessions ended/removed/revoked in Clerk and users deleted in Clerk.
-- revoked_at is D1's clock at write time (isolates poll `revoked_at > last seen`); rows live until
-- expires_at, after which no token issued before the revocation can still be valid.
CREATE TABLE `revoked_sessions` (
	`sid` text PRIMARY KEY NOT NULL,
	`user_id` text,
	`revoked_at` integer NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `revoked_sessions_revoked_at_idx` ON `revoked_sessions` (`revoked_at`);--> statement-breakpoint
CREATE INDEX `revoked_sessions_expires_at_idx` ON `revoked_sessions` (`expires_at`);--> statement-breakpoint
CREATE TABLE `revoked_users` (
	`user_id` text PRIMARY KEY NOT NULL,
	`revoked_before` integer NOT NULL,
	`revoked_at` integer NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `revoked_users_revoked_at_idx` ON `revoked_users` (`revoked_at`);--> statement-breakpoint
CREATE INDEX `revoked_users_expires_at_idx` ON `revoked_users` (`expires_at`);
