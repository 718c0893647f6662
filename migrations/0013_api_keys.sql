-- Issue 12, tenant API keys (services/api-keys.ts). Only the SHA-256 of a secret is stored (hash; during
-- a rotation's grace period also previous_hash); the plaintext is shown once and never written. last4 is
-- the secret's last 4 characters, for display. permissions is a JSON array of permission keys.
CREATE TABLE `api_keys` (
	`id` text PRIMARY KEY NOT NULL,
	`organization_id` text NOT NULL,
	`name` text NOT NULL,
	`hash` text NOT NULL,
	`last4` text NOT NULL,
	`previous_hash` text,
	`previous_expires_at` integer,
	`permissions` text NOT NULL,
	`rate_limit_per_minute` integer,
	`created_by` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`last_used_at` integer,
	`expires_at` integer,
	`rotated_at` integer,
	`revoked_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `api_keys_hash_uq` ON `api_keys` (`hash`);--> statement-breakpoint
CREATE INDEX `api_keys_previous_hash_idx` ON `api_keys` (`previous_hash`);--> statement-breakpoint
CREATE INDEX `api_keys_org_created_idx` ON `api_keys` (`organization_id`,`created_at`,`id`);--> statement-breakpoint
-- The permission that guards the key routes; admins hold it (like every catalogue permission, 0001).
INSERT INTO permissions (id, key, name, is_system, source_updated_at, created_at, updated_at) VALUES
  ('perm_api_keys_manage', 'org:api_keys:manage', 'api keys manage', 0, 0, 0, 0)
  ON CONFLICT (key) DO NOTHING;
--> statement-breakpoint
INSERT INTO role_permissions (role_id, permission_id)
  SELECT 'role_system_admin', id FROM permissions WHERE key = 'org:api_keys:manage'
  ON CONFLICT DO NOTHING;
