import { and, asc, eq, type SQL, sql } from "drizzle-orm";
import { sqliteTable } from "drizzle-orm/sqlite-core";
import type { Database } from "../../db/client";
import { categories, productColumns, products, variants } from "../../db/schema";
import { ApiError } from "../../errors";
import { decodeCursor, page } from "../../lib/cursor";
import type { IdempotentCommit } from "../idempotency";
import { keysetPage, type PageQuery } from "../keyset-page";
import type { IfMatch } from "../../lib/etag";
import type { ChangeLog } from "../outbox";
import { assertVersion, TenantScope } from "./shared";

type Category = typeof categories.$inferSelect;
type Product = typeof products.$inferSelect;
type Variant = typeof variants.$inferSelect;
type ProductStatus = Product["status"];

interface ProductInput {
	name: string;
	sku: string;
	description?: string | null;
	priceMinor: number;
	currency: string;
	status: ProductStatus;
	stock: number;
	categoryId?: string | null;
}

/**
 * The tenant store's search index (store schema v3): an FTS5 table whose content is the products table
 * and which declares its columns, so drizzle reads a hit's product through it. drizzle cannot create
 * virtual tables; this declaration is for queries only (the migration creates it).
 */
const productsSearch = sqliteTable("products_search", productColumns);
type ProductFilters = { status?: ProductStatus; categoryId?: string; sku?: string };

/** `text` as one FTS5 phrase: every character literal (a double quote doubled). */
const ftsPhrase = (text: string) => `"${text.replaceAll('"', '""')}"`;

/** Categories, products and their variants of one organization. Stock changes live in Inventory. */
export class Catalogue extends TenantScope {
	/** `searchIndex`: searches go through a tenant store's products_search (D1's tables have only products_fts). */
	constructor(
		db: Database,
		organizationId: string,
		private readonly searchIndex: boolean,
	) {
		super(db, organizationId);
	}

	// --- categories -------------------------------------------------------------------------

	listCategories(q: PageQuery) {
		return keysetPage(this.db, categories, "createdAt", "asc", this.own(categories), q);
	}

	getCategory(id: string): Promise<Category> {
		return this.findOne(categories, and(this.own(categories), eq(categories.id, id)), "category");
	}

	createCategory(input: { name: string; slug: string }, log: ChangeLog, commit?: IdempotentCommit<Category>): Promise<Category> {
		const unique = `a category with slug "${input.slug}" already exists`;
		return this.insertOwned(categories, "cat", input, unique, { type: "category", log }, commit);
	}

	updateCategory(id: string, patch: Partial<{ name: string; slug: string }>, log: ChangeLog, ifMatch?: IfMatch): Promise<Category> {
		const where = and(this.own(categories), eq(categories.id, id));
		const unique = `a category with slug "${patch.slug}" already exists`;
		return this.versionedUpdate(categories, where, patch, ifMatch, "category", unique, { log, id, before: patch });
	}

	/** Deletes the category (its products stay, uncategorized), with its `category.deleted` audit entry in the same batch. */
	async deleteCategory(id: string, log: ChangeLog, ifMatch?: IfMatch): Promise<void> {
		const current = await this.getCategory(id);
		assertVersion(current, ifMatch, "category");
		const where = and(this.own(categories), eq(categories.id, id));
		await this.commitBatch(
			[
				...this.outboxStatements(log, { action: "category.deleted", targetType: "category", targetId: id }, { when: this.exists(categories, where) }),
				this.db
					.update(products)
					.set({ categoryId: null, updatedAt: Date.now(), version: sql`${products.version} + 1` })
					.where(and(this.own(products), eq(products.categoryId, id)))
					.getSQL(),
				this.db.delete(categories).where(where).getSQL(),
			],
			log,
		);
	}

	// --- products ---------------------------------------------------------------------------

	listProducts(q: PageQuery & ProductFilters & { q?: string }) {
		if (q.q && [...q.q].length >= 3) return this.searchIndex ? this.searchProducts(q.q, q) : this.search(q.q, this.filters(products, q), q);
		return keysetPage(this.db, products, "createdAt", "asc", and(this.filters(products, q), q.q ? this.nameLike(q.q) : undefined), q);
	}

	private filters(t: typeof products | typeof productsSearch, q: ProductFilters): SQL | undefined {
		return and(
			this.own(t),
			q.status ? eq(t.status, q.status) : undefined,
			q.categoryId ? eq(t.categoryId, q.categoryId) : undefined,
			q.sku ? eq(t.sku, q.sku) : undefined,
		);
	}

	/**
	 * Products whose name contains `text` (three or more characters; case-insensitive, every character
	 * literal), in the tenant's store: products_search, a trigram index with `text` as one FTS5 phrase
	 * (no length limit, unlike LIKE). A page walks the index's matches in rowid order (the product's
	 * insertion order) from the cursor, and each hit's columns come through the index from its product:
	 * `limit` + 1 rows at any depth (with another filter, also the matches it skips). Ordering by
	 * createdAt instead would read every match first. The cursor is (rowid, product id), as in D1's search.
	 */
	private async searchProducts(text: string, q: PageQuery & ProductFilters) {
		const after = decodeCursor(q.cursor);
		const rows = await this.db
			.select({ product: productsSearch, k: sql<number>`products_search.rowid` })
			.from(productsSearch)
			.where(
				and(
					sql`products_search MATCH ${ftsPhrase(text)}`,
					// FTS5 seeks to a rowid bound only when it is an INTEGER; a bound number arrives as REAL, and
					// then FTS5 returns every match from the start and SQLite filters (all matches read again).
					after ? sql`products_search.rowid > CAST(${after.k} AS INTEGER)` : undefined,
					this.filters(productsSearch, q),
				),
			)
			.orderBy(sql`products_search.rowid`)
			.limit(q.limit + 1);
		const result = page(rows, q.limit, (r) => ({ k: r.k, id: r.product.id }));
		return { data: result.data.map((r) => r.product), nextCursor: result.nextCursor };
	}

	/**
	 * The same search on the shared D1 tables (a tenant not yet moved to its store): products_fts
	 * (migration 0008) holds name, product_id and organization_id; each hit is its match and its product.
	 */
	private async search(text: string, where: SQL | undefined, q: PageQuery) {
		const after = decodeCursor(q.cursor);
		const rows = await this.db
			.select({ product: products, k: sql<number>`products_fts.rowid` })
			.from(products)
			.innerJoin(sql`products_fts`, sql`products_fts.product_id = ${products.id}`)
			.where(
				and(
					sql`products_fts MATCH ${ftsPhrase(text)}`,
					sql`products_fts.organization_id = ${this.organizationId}`,
					after ? sql`products_fts.rowid > CAST(${after.k} AS INTEGER)` : undefined,
					where,
				),
			)
			.orderBy(sql`products_fts.rowid`)
			.limit(q.limit + 1);
		const result = page(rows, q.limit, (r) => ({ k: r.k, id: r.product.id }));
		return { data: result.data.map((r) => r.product), nextCursor: result.nextCursor };
	}

	/**
	 * One or two characters (trigram cannot match them): a LIKE whose pattern is at most 2 x 4 bytes
	 * escaped plus two %, far under D1's 50-byte LIKE limit.
	 */
	private nameLike(text: string): SQL {
		return sql`${products.name} LIKE ${`%${text.replace(/[%_\\]/g, (m) => `\\${m}`)}%`} ESCAPE '\\'`;
	}

	getProduct(id: string): Promise<Product> {
		return this.findOne(products, and(this.own(products), eq(products.id, id)), "product");
	}

	private async assertCategory(categoryId: string | null | undefined) {
		if (!categoryId) return;
		const [row] = await this.db
			.select({ id: categories.id })
			.from(categories)
			.where(and(this.own(categories), eq(categories.id, categoryId)));
		if (!row) {
			throw new ApiError("VALIDATION_FAILED", "categoryId: no such category", {
				errors: [{ path: "categoryId", message: "no such category" }],
			});
		}
	}

	async createProduct(input: ProductInput, log: ChangeLog, commit?: IdempotentCommit<Product>): Promise<Product> {
		await this.assertCategory(input.categoryId);
		const unique = `a product with sku "${input.sku}" already exists`;
		return this.insertOwned(products, "prd", input, unique, { type: "product", log }, commit);
	}

	/** Updates the product; its audit entry has the product as it was before (read first) and after. */
	async updateProduct(id: string, patch: Partial<Omit<ProductInput, "stock">>, log: ChangeLog, ifMatch?: IfMatch): Promise<Product> {
		const { organizationId: _, ...before } = await this.getProduct(id);
		await this.assertCategory(patch.categoryId);
		const where = and(this.own(products), eq(products.id, id));
		const unique = `a product with sku "${patch.sku}" already exists`;
		return this.versionedUpdate(products, where, patch, ifMatch, "product", unique, { log, id, before });
	}

	/** Deletes the product and its variants, with its `product.deleted` audit entry in the same batch. */
	async deleteProduct(id: string, log: ChangeLog, ifMatch?: IfMatch): Promise<void> {
		const current = await this.getProduct(id);
		assertVersion(current, ifMatch, "product");
		const where = and(this.own(products), eq(products.id, id));
		await this.commitBatch(
			[
				...this.outboxStatements(log, { action: "product.deleted", targetType: "product", targetId: id }, { when: this.exists(products, where) }),
				this.db.delete(variants).where(and(this.own(variants), eq(variants.productId, id))).getSQL(),
				this.db.delete(products).where(where).getSQL(),
			],
			log,
		);
	}

	// --- variants ---------------------------------------------------------------------------

	async listVariants(productId: string): Promise<Variant[]> {
		await this.getProduct(productId);
		return this.db
			.select()
			.from(variants)
			.where(and(this.own(variants), eq(variants.productId, productId)))
			.orderBy(asc(variants.createdAt), asc(variants.id));
	}

	getVariant(productId: string, variantId: string): Promise<Variant> {
		return this.findOne(variants, and(this.own(variants), eq(variants.productId, productId), eq(variants.id, variantId)), "variant");
	}

	async createVariant(
		productId: string,
		input: { name: string; sku: string; priceMinor?: number | null; stock: number },
		log: ChangeLog,
		commit?: IdempotentCommit<Variant>,
	): Promise<Variant> {
		await this.getProduct(productId);
		const unique = `a variant with sku "${input.sku}" already exists`;
		return this.insertOwned(variants, "var", { ...input, productId }, unique, { type: "variant", log }, commit);
	}

	updateVariant(
		productId: string,
		variantId: string,
		patch: Partial<{ name: string; sku: string; priceMinor: number | null }>,
		log: ChangeLog,
		ifMatch?: IfMatch,
	): Promise<Variant> {
		const where = and(this.own(variants), eq(variants.productId, productId), eq(variants.id, variantId));
		const unique = `a variant with sku "${patch.sku}" already exists`;
		return this.versionedUpdate(variants, where, patch, ifMatch, "variant", unique, { log, id: variantId, before: patch });
	}

	/** Deletes the variant, with its `variant.deleted` audit entry in the same batch. */
	async deleteVariant(productId: string, variantId: string, log: ChangeLog, ifMatch?: IfMatch): Promise<void> {
		const current = await this.getVariant(productId, variantId);
		assertVersion(current, ifMatch, "variant");
		const where = and(this.own(variants), eq(variants.id, variantId));
		await this.commitBatch(
			[
				...this.outboxStatements(log, { action: "variant.deleted", targetType: "variant", targetId: variantId }, { when: this.exists(variants, where) }),
				this.db.delete(variants).where(where).getSQL(),
			],
			log,
		);
	}
}
