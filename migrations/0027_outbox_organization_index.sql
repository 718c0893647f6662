-- The purge of an offboarded tenant's shared rows deletes its outbox rows (src/tenant-store/purge.ts) by
-- organization_id: an index that starts with it, as every other table the purge walks has.
CREATE INDEX `outbox_org_idx` ON `outbox` (`organization_id`);
