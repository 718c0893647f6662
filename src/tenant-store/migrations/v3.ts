/**
 * Tenant store schema v3 (expand only: v2 code keeps searching products_fts, which its triggers still
 * maintain). products_search: an FTS5 trigram index over products.name whose content is the products
 * table itself (external content, rowid = products.rowid), declaring every product column so a search
 * page is read from the index alone: one row per hit, where products_fts needed its match and then the
 * product (two). It stores only the index; the columns are read from products when a hit is returned.
 * Its column list must follow the products table: a version that adds a product column recreates it.
 * The contraction that drops products_fts (and its triggers) ships once no deployed code reads it.
 */
const unindexed = [
	"id",
	"organization_id",
	"category_id",
	"sku",
	"description",
	"price_minor",
	"currency",
	"status",
	"stock",
	"version",
	"created_at",
	"updated_at",
].map((c) => `${c} UNINDEXED`);

export const v3: string[] = [
	`CREATE VIRTUAL TABLE products_search USING fts5(name, ${unindexed.join(", ")}, content='products', content_rowid='rowid', tokenize='trigram')`,
	`CREATE TRIGGER products_search_ai AFTER INSERT ON products BEGIN
	INSERT INTO products_search (rowid, name) VALUES (new.rowid, new.name);
END`,
	`CREATE TRIGGER products_search_ad AFTER DELETE ON products BEGIN
	INSERT INTO products_search (products_search, rowid, name) VALUES ('delete', old.rowid, old.name);
END`,
	`CREATE TRIGGER products_search_au AFTER UPDATE OF name ON products BEGIN
	INSERT INTO products_search (products_search, rowid, name) VALUES ('delete', old.rowid, old.name);
	INSERT INTO products_search (rowid, name) VALUES (new.rowid, new.name);
END`,
	"INSERT INTO products_search (products_search) VALUES ('rebuild')",
];
