-- When a Clerk invitation expires (its expires_at, ms): Clerk sends no webhook then, so a pending invitation past
-- it is counted as expired here (not a seat taken, listed with status expired).
ALTER TABLE `invitations` ADD `expires_at` integer;
--> statement-breakpoint
-- Pending invitations stored before this column: Clerk's default lifetime (expires_in_days, 30) from their creation.
UPDATE `invitations` SET `expires_at` = `created_at` + 30 * 86400000 WHERE `status` = 'pending' AND `expires_at` IS NULL;
