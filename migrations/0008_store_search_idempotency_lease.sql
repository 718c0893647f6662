-- Product search by substring without LIKE (D1 refuses LIKE patterns over 50 bytes): an FTS5 index
-- over products.name with the trigram tokenizer (case-insensitive substring matching for 3+ characters).
-- Each row carries its product's id and organization (UNINDEXED, never tokenized): a search is scoped by
-- organization and joined to products by id. The FTS row's rowid is the product's rowid, so the
-- triggers find it directly.
CREATE VIRTUAL TABLE `products_fts` USING fts5(`name`, `product_id` UNINDEXED, `organization_id` UNINDEXED, tokenize='trigram');--> statement-breakpoint
INSERT INTO `products_fts` (`rowid`, `name`, `product_id`, `organization_id`) SELECT `rowid`, `name`, `id`, `organization_id` FROM `products`;--> statement-breakpoint
CREATE TRIGGER `products_fts_ai` AFTER INSERT ON `products` BEGIN
	INSERT INTO `products_fts` (`rowid`, `name`, `product_id`, `organization_id`) VALUES (new.`rowid`, new.`name`, new.`id`, new.`organization_id`);
END;--> statement-breakpoint
CREATE TRIGGER `products_fts_ad` AFTER DELETE ON `products` BEGIN
	DELETE FROM `products_fts` WHERE `rowid` = old.`rowid`;
END;--> statement-breakpoint
CREATE TRIGGER `products_fts_au` AFTER UPDATE OF `name`, `id`, `organization_id` ON `products` BEGIN
	DELETE FROM `products_fts` WHERE `rowid` = old.`rowid`;
	INSERT INTO `products_fts` (`rowid`, `name`, `product_id`, `organization_id`) VALUES (new.`rowid`, new.`name`, new.`id`, new.`organization_id`);
END;--> statement-breakpoint
-- Idempotency-Key claims hold a short lease (lease_until, ms) instead of blocking the key for 24 h,
-- and a claim token: only the holder of the current claim may store the response or release the key.
ALTER TABLE `idempotency_keys` ADD `lease_until` integer;--> statement-breakpoint
ALTER TABLE `idempotency_keys` ADD `claim_token` text;
