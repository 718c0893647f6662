import { and, asc, eq, type SQL, sql } from "drizzle-orm";
import { categories, products, variants } from "../../db/schema";
import { ApiError } from "../../errors";
import type { IdempotentCommit } from "../idempotency";
import { keysetPage, type PageQuery } from "../keyset-page";
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

/** Categories, products and their variants of one organization. Stock changes live in Inventory. */
export class Catalogue extends TenantScope {
	// --- categories -------------------------------------------------------------------------

	listCategories(q: PageQuery) {
		return keysetPage(this.db, categories, "createdAt", "asc", this.own(categories), q);
	}

	getCategory(id: string): Promise<Category> {
		return this.findOne(categories, and(this.own(categories), eq(categories.id, id)), "category");
	}

	createCategory(input: { name: string; slug: string }, commit?: IdempotentCommit<Category>): Promise<Category> {
		return this.insertOwned(categories, "cat", input, `a category with slug "${input.slug}" already exists`, commit);
	}

	updateCategory(id: string, patch: Partial<{ name: string; slug: string }>, ifVersion?: number): Promise<Category> {
		const where = and(this.own(categories), eq(categories.id, id));
		const unique = `a category with slug "${patch.slug}" already exists`;
		return this.versionedUpdate(categories, where, patch, ifVersion, "category", unique);
	}

	/** Deletes the category; its products stay, uncategorized. */
	async deleteCategory(id: string, ifVersion?: number): Promise<void> {
		const current = await this.getCategory(id);
		assertVersion(current, ifVersion, "category");
		await this.db.batch([
			this.db
				.update(products)
				.set({ categoryId: null, updatedAt: Date.now() })
				.where(and(this.own(products), eq(products.categoryId, id))),
			this.db.delete(categories).where(and(this.own(categories), eq(categories.id, id))),
		]);
	}

	// --- products ---------------------------------------------------------------------------

	listProducts(q: PageQuery & { status?: ProductStatus; categoryId?: string; q?: string; sku?: string }) {
		const where = and(
			this.own(products),
			q.status ? eq(products.status, q.status) : undefined,
			q.categoryId ? eq(products.categoryId, q.categoryId) : undefined,
			q.sku ? eq(products.sku, q.sku) : undefined,
			q.q ? this.nameContains(q.q) : undefined,
		);
		return keysetPage(this.db, products, "createdAt", "asc", where, q);
	}

	/**
	 * Products whose name contains `text` (case-insensitive, every character literal). Three or more
	 * characters: the products_fts trigram index, scoped to this organization, with `text` as one FTS5
	 * phrase (no length limit, unlike LIKE). One or two characters (trigram cannot match them): a LIKE
	 * whose pattern is at most 2 x 4 bytes escaped plus two %, far under D1's 50-byte LIKE limit.
	 */
	private nameContains(text: string): SQL {
		if ([...text].length < 3) {
			return sql`${products.name} LIKE ${`%${text.replace(/[%_\\]/g, (m) => `\\${m}`)}%`} ESCAPE '\\'`;
		}
		const phrase = `"${text.replaceAll('"', '""')}"`;
		return sql`${products.id} IN (SELECT product_id FROM products_fts WHERE products_fts MATCH ${phrase} AND organization_id = ${this.organizationId})`;
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

	async createProduct(input: ProductInput, commit?: IdempotentCommit<Product>): Promise<Product> {
		await this.assertCategory(input.categoryId);
		return this.insertOwned(products, "prd", input, `a product with sku "${input.sku}" already exists`, commit);
	}

	async updateProduct(id: string, patch: Partial<Omit<ProductInput, "stock">>, ifVersion?: number): Promise<Product> {
		await this.assertCategory(patch.categoryId);
		const where = and(this.own(products), eq(products.id, id));
		return this.versionedUpdate(products, where, patch, ifVersion, "product", `a product with sku "${patch.sku}" already exists`);
	}

	/** Deletes the product and its variants. */
	async deleteProduct(id: string, ifVersion?: number): Promise<void> {
		const current = await this.getProduct(id);
		assertVersion(current, ifVersion, "product");
		await this.db.batch([
			this.db.delete(variants).where(and(this.own(variants), eq(variants.productId, id))),
			this.db.delete(products).where(and(this.own(products), eq(products.id, id))),
		]);
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
		commit?: IdempotentCommit<Variant>,
	): Promise<Variant> {
		await this.getProduct(productId);
		return this.insertOwned(variants, "var", { ...input, productId }, `a variant with sku "${input.sku}" already exists`, commit);
	}

	updateVariant(
		productId: string,
		variantId: string,
		patch: Partial<{ name: string; sku: string; priceMinor: number | null }>,
		ifVersion?: number,
	): Promise<Variant> {
		const where = and(this.own(variants), eq(variants.productId, productId), eq(variants.id, variantId));
		return this.versionedUpdate(variants, where, patch, ifVersion, "variant", `a variant with sku "${patch.sku}" already exists`);
	}

	async deleteVariant(productId: string, variantId: string, ifVersion?: number): Promise<void> {
		const current = await this.getVariant(productId, variantId);
		assertVersion(current, ifVersion, "variant");
		await this.db.delete(variants).where(and(this.own(variants), eq(variants.id, variantId)));
	}
}
