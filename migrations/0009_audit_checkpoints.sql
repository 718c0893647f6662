-- Audit chain verification resumes from the last verified position instead of genesis: one row per
-- organization, the last entry verified intact (seq) and its hash. Written only by the verify route.
CREATE TABLE `audit_checkpoints` (
	`organization_id` text PRIMARY KEY NOT NULL,
	`seq` integer NOT NULL,
	`hash` text NOT NULL,
	`verified_at` integer NOT NULL
);
