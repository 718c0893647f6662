-- When a Clerk invitation expires (its expires_at, ms): Clerk sends no webhook then, so a pending invitation past
-- it is counted as expired here (not a seat taken, listed with status expired).
ALTER TABLE `invitations` ADD `expires_at` integer;
