-- What operators did (src/services/operator-actions.ts): every operator request that changed something or
-- exported a tenant, once it succeeded: who, what, which organization, when, and the request's id.
-- Read with GET /api/admin/actions. A tenant's own audit chain cannot hold these: a deletion wipes it.
CREATE TABLE `operator_actions` (
	`id` text PRIMARY KEY NOT NULL,
	`at` integer NOT NULL,
	`operator_id` text NOT NULL,
	`action` text NOT NULL,
	`organization_id` text,
	`target_id` text,
	`detail` text,
	`status` integer NOT NULL,
	`request_id` text NOT NULL
);--> statement-breakpoint
CREATE INDEX `operator_actions_at_idx` ON `operator_actions` (`at`,`id`);--> statement-breakpoint
CREATE INDEX `operator_actions_org_idx` ON `operator_actions` (`organization_id`,`at`,`id`);
