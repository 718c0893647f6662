-- Per-organization override of the plan's seats (members + pending invitations); NULL = the plan's seats.
ALTER TABLE `organizations` ADD `seat_limit` integer;
