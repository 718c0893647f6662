-- GET /api/orgs/:orgId/events answers the organization's admins (role org:admin, as API.md has it); the
-- permission org:events:read gated it before and gates nothing now, so it leaves the catalogue: an API key
-- can no longer be given it, and roles no longer carry it.
UPDATE `permissions` SET `deleted_at` = CAST(unixepoch('subsec') * 1000 AS INTEGER), `updated_at` = CAST(unixepoch('subsec') * 1000 AS INTEGER)
	WHERE `key` = 'org:events:read' AND `deleted_at` IS NULL;--> statement-breakpoint
DELETE FROM `role_permissions` WHERE `permission_id` IN (SELECT `id` FROM `permissions` WHERE `key` = 'org:events:read');
