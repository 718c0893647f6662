-- GET /api/orgs/:orgId/events?type= pages on (received_at, svix_id) descending. The type index lacked the
-- tie-breaker, so SQLite walked events_org_received_idx and filtered by type: a page read page / selectivity
-- rows (62 for a type that is one event in three, found by `npm run bench -- scale`). With svix_id at its
-- end the filtered list is an index range like the unfiltered one: a page reads limit + 1 rows.
DROP INDEX IF EXISTS `events_org_type_idx`;--> statement-breakpoint
CREATE INDEX `events_org_type_idx` ON `events` (`organization_id`,`type`,`received_at`,`svix_id`);
