DROP INDEX `webhook_deliveries_endpoint_event_uq`;--> statement-breakpoint
CREATE INDEX `webhook_deliveries_org_event_idx` ON `webhook_deliveries` (`organization_id`,`event_id`,`endpoint_id`);