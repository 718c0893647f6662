import { and, asc, eq, gt, inArray, or, type SQL, sql } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import { runBatch } from "../db/batch";
import type { Database } from "../db/client";
import { categories, orderItems, orderStatusHistory, orders, products, variants } from "../db/schema";
import { ApiError } from "../errors";
import { type Cursor, decodeCursor, page } from "../lib/cursor";
import { newId } from "../lib/ids";

export type Category = typeof categories.$inferSelect;
export type Product = typeof products.$inferSelect;
export type Variant = typeof variants.$inferSelect;
export type Order = typeof orders.$inferSelect;
export type OrderItem = typeof orderItems.$inferSelect;
export type OrderStatus = Order["status"];
export type ProductStatus = Product["status"];

export interface PageQuery {
	cursor?: string;
	limit: number;
}

/** Allowed order status transitions; cancelling a pending or paid order puts its stock back. */
export const ORDER_TRANSITIONS: Record<OrderStatus, OrderStatus[]> = {
	pending: ["paid", "cancelled"],
	paid: ["fulfilled", "cancelled"],
	fulfilled: [],
	cancelled: [],
};

/** Maps D1 constraint failures to API errors; anything else propagates as a 500. */
function constraintError(err: unknown, messages: { unique?: string; check?: string }): never {
	const msg = err instanceof Error ? `${err.message} ${(err.cause as Error | undefined)?.message ?? ""}` : String(err);
	if (messages.unique && /UNIQUE constraint failed/i.test(msg)) throw new ApiError("CONFLICT", messages.unique);
	if (messages.check && /CHECK constraint failed/i.test(msg)) throw new ApiError("CONFLICT", messages.check);
	throw err;
}

const stale = (what: string) =>
	new ApiError("PRECONDITION_FAILED", `${what} was modified: If-Match does not match its current ETag`);

/** 412 when an If-Match version was given and the row has moved on. */
function assertVersion(row: { version: number }, ifVersion: number | undefined, what: string): void {
	if (ifVersion !== undefined && row.version !== ifVersion) throw stale(what);
}

/** (created_at, id) keyset condition for ascending pages. */
function after(createdAt: SQLiteColumn, id: SQLiteColumn, c: Cursor | null): SQL | undefined {
	return c ? or(gt(createdAt, c.k), and(eq(createdAt, c.k), gt(id, c.id))) : undefined;
}

/**
 * The only way to read or write tenant-owned tables. It cannot be built without an organization id
 * (taken from the resolved membership, never from client input), and every statement it issues is
 * scoped by `organization_id = <that id>`: a guessed id of another tenant's row is simply not found.
 *
 * @example const store = new TenantStore(db, access.organization.id); await store.getProduct(id);
 */
export class TenantStore {
	constructor(
		private readonly db: Database,
		readonly organizationId: string,
	) {
		if (!organizationId) throw new Error("TenantStore requires an organization id");
	}

	private own<T extends { organizationId: SQLiteColumn }>(table: T): SQL {
		return eq(table.organizationId, this.organizationId);
	}

	/** Versioned update: bumps `version`; with `ifVersion` set, a stale version is a 412. */
	private async versioned<T>(run: () => Promise<T[]>, exists: () => Promise<unknown[]>, what: string): Promise<T> {
		const rows = await run();
		if (rows[0]) return rows[0];
		if ((await exists()).length === 0) throw new ApiError("NOT_FOUND", `${what} not found`);
		throw stale(what);
	}

	// --- categories -------------------------------------------------------------------------

	async listCategories(q: PageQuery) {
		const rows = await this.db
			.select()
			.from(categories)
			.where(and(this.own(categories), after(categories.createdAt, categories.id, decodeCursor(q.cursor))))
			.orderBy(asc(categories.createdAt), asc(categories.id))
			.limit(q.limit + 1);
		return page(rows, q.limit, (r) => ({ k: r.createdAt, id: r.id }));
	}

	async getCategory(id: string): Promise<Category> {
		const [row] = await this.db
			.select()
			.from(categories)
			.where(and(this.own(categories), eq(categories.id, id)));
		if (!row) throw new ApiError("NOT_FOUND", "category not found");
		return row;
	}

	async createCategory(input: { name: string; slug: string }): Promise<Category> {
		const now = Date.now();
		try {
			const [row] = await this.db
				.insert(categories)
				.values({ id: newId("cat"), organizationId: this.organizationId, ...input, createdAt: now, updatedAt: now })
				.returning();
			return row!;
		} catch (err) {
			constraintError(err, { unique: `a category with slug "${input.slug}" already exists` });
		}
	}

	async updateCategory(id: string, patch: Partial<{ name: string; slug: string }>, ifVersion?: number): Promise<Category> {
		try {
			return await this.versioned(
				() =>
					this.db
						.update(categories)
						.set({ ...patch, version: sql`${categories.version} + 1`, updatedAt: Date.now() })
						.where(
							and(
								this.own(categories),
								eq(categories.id, id),
								ifVersion === undefined ? undefined : eq(categories.version, ifVersion),
							),
						)
						.returning(),
				() =>
					this.db
						.select({ id: categories.id })
						.from(categories)
						.where(and(this.own(categories), eq(categories.id, id))),
				"category",
			);
		} catch (err) {
			if (err instanceof ApiError) throw err;
			constraintError(err, { unique: `a category with slug "${patch.slug}" already exists` });
		}
	}

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

	async listProducts(q: PageQuery & { status?: ProductStatus; categoryId?: string; q?: string; sku?: string }) {
		const rows = await this.db
			.select()
			.from(products)
			.where(
				and(
					this.own(products),
					q.status ? eq(products.status, q.status) : undefined,
					q.categoryId ? eq(products.categoryId, q.categoryId) : undefined,
					q.sku ? eq(products.sku, q.sku) : undefined,
					q.q ? sql`${products.name} LIKE ${`%${q.q.replace(/[%_\\]/g, (m) => `\\${m}`)}%`} ESCAPE '\\'` : undefined,
					after(products.createdAt, products.id, decodeCursor(q.cursor)),
				),
			)
			.orderBy(asc(products.createdAt), asc(products.id))
			.limit(q.limit + 1);
		return page(rows, q.limit, (r) => ({ k: r.createdAt, id: r.id }));
	}

	async getProduct(id: string): Promise<Product> {
		const [row] = await this.db
			.select()
			.from(products)
			.where(and(this.own(products), eq(products.id, id)));
		if (!row) throw new ApiError("NOT_FOUND", "product not found");
		return row;
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

	async createProduct(input: {
		name: string;
		sku: string;
		description?: string | null;
		priceMinor: number;
		currency: string;
		status: ProductStatus;
		stock: number;
		categoryId?: string | null;
	}): Promise<Product> {
		await this.assertCategory(input.categoryId);
		const now = Date.now();
		try {
			const [row] = await this.db
				.insert(products)
				.values({ ...input, id: newId("prd"), organizationId: this.organizationId, createdAt: now, updatedAt: now })
				.returning();
			return row!;
		} catch (err) {
			constraintError(err, { unique: `a product with sku "${input.sku}" already exists` });
		}
	}

	async updateProduct(
		id: string,
		patch: Partial<Omit<Parameters<TenantStore["createProduct"]>[0], "stock">>,
		ifVersion?: number,
	): Promise<Product> {
		await this.assertCategory(patch.categoryId);
		try {
			return await this.versioned(
				() =>
					this.db
						.update(products)
						.set({ ...patch, version: sql`${products.version} + 1`, updatedAt: Date.now() })
						.where(
							and(this.own(products), eq(products.id, id), ifVersion === undefined ? undefined : eq(products.version, ifVersion)),
						)
						.returning(),
				() =>
					this.db
						.select({ id: products.id })
						.from(products)
						.where(and(this.own(products), eq(products.id, id))),
				"product",
			);
		} catch (err) {
			if (err instanceof ApiError) throw err;
			constraintError(err, { unique: `a product with sku "${patch.sku}" already exists` });
		}
	}

	async deleteProduct(id: string, ifVersion?: number): Promise<void> {
		const current = await this.getProduct(id);
		assertVersion(current, ifVersion, "product");
		await this.db.batch([
			this.db.delete(variants).where(and(this.own(variants), eq(variants.productId, id))),
			this.db.delete(products).where(and(this.own(products), eq(products.id, id))),
		]);
	}

	/** Atomic stock change; a result below zero is refused (409) by the table's CHECK constraint. */
	async adjustStock(productId: string, delta: number, variantId?: string): Promise<{ stock: number; version: number }> {
		try {
			const rows = variantId
				? await this.db
						.update(variants)
						.set({ stock: sql`${variants.stock} + ${delta}`, version: sql`${variants.version} + 1`, updatedAt: Date.now() })
						.where(and(this.own(variants), eq(variants.id, variantId), eq(variants.productId, productId)))
						.returning({ stock: variants.stock, version: variants.version })
				: await this.db
						.update(products)
						.set({ stock: sql`${products.stock} + ${delta}`, version: sql`${products.version} + 1`, updatedAt: Date.now() })
						.where(and(this.own(products), eq(products.id, productId)))
						.returning({ stock: products.stock, version: products.version });
			if (!rows[0]) throw new ApiError("NOT_FOUND", variantId ? "variant not found" : "product not found");
			return rows[0];
		} catch (err) {
			if (err instanceof ApiError) throw err;
			constraintError(err, { check: "insufficient stock: the result would be negative" });
		}
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

	async getVariant(productId: string, variantId: string): Promise<Variant> {
		const [row] = await this.db
			.select()
			.from(variants)
			.where(and(this.own(variants), eq(variants.productId, productId), eq(variants.id, variantId)));
		if (!row) throw new ApiError("NOT_FOUND", "variant not found");
		return row;
	}

	async createVariant(
		productId: string,
		input: { name: string; sku: string; priceMinor?: number | null; stock: number },
	): Promise<Variant> {
		await this.getProduct(productId);
		const now = Date.now();
		try {
			const [row] = await this.db
				.insert(variants)
				.values({ ...input, id: newId("var"), organizationId: this.organizationId, productId, createdAt: now, updatedAt: now })
				.returning();
			return row!;
		} catch (err) {
			constraintError(err, { unique: `a variant with sku "${input.sku}" already exists` });
		}
	}

	async updateVariant(
		productId: string,
		variantId: string,
		patch: Partial<{ name: string; sku: string; priceMinor: number | null }>,
		ifVersion?: number,
	): Promise<Variant> {
		const where = and(this.own(variants), eq(variants.productId, productId), eq(variants.id, variantId));
		try {
			return await this.versioned(
				() =>
					this.db
						.update(variants)
						.set({ ...patch, version: sql`${variants.version} + 1`, updatedAt: Date.now() })
						.where(and(where, ifVersion === undefined ? undefined : eq(variants.version, ifVersion)))
						.returning(),
				() => this.db.select({ id: variants.id }).from(variants).where(where),
				"variant",
			);
		} catch (err) {
			if (err instanceof ApiError) throw err;
			constraintError(err, { unique: `a variant with sku "${patch.sku}" already exists` });
		}
	}

	async deleteVariant(productId: string, variantId: string, ifVersion?: number): Promise<void> {
		const current = await this.getVariant(productId, variantId);
		assertVersion(current, ifVersion, "variant");
		await this.db.delete(variants).where(and(this.own(variants), eq(variants.id, variantId)));
	}

	// --- orders -----------------------------------------------------------------------------

	async listOrders(q: PageQuery & { status?: OrderStatus }) {
		const rows = await this.db
			.select()
			.from(orders)
			.where(
				and(
					this.own(orders),
					q.status ? eq(orders.status, q.status) : undefined,
					after(orders.createdAt, orders.id, decodeCursor(q.cursor)),
				),
			)
			.orderBy(asc(orders.createdAt), asc(orders.id))
			.limit(q.limit + 1);
		return page(rows, q.limit, (r) => ({ k: r.createdAt, id: r.id }));
	}

	async getOrder(id: string) {
		const [orderRows, items, history] = await this.db.batch([
			this.db
				.select()
				.from(orders)
				.where(and(this.own(orders), eq(orders.id, id))),
			this.db
				.select()
				.from(orderItems)
				.where(and(this.own(orderItems), eq(orderItems.orderId, id)))
				.orderBy(asc(orderItems.id)),
			this.db
				.select()
				.from(orderStatusHistory)
				.where(and(this.own(orderStatusHistory), eq(orderStatusHistory.orderId, id)))
				.orderBy(asc(orderStatusHistory.at), asc(orderStatusHistory.id)),
		]);
		const order = orderRows[0];
		if (!order) throw new ApiError("NOT_FOUND", "order not found");
		return { ...order, items, history };
	}

	/**
	 * Creates an order from current catalogue data: each item copies the product's (or variant's)
	 * name, sku and price at this moment, stock is taken in the same atomic batch (409 if short).
	 */
	async createOrder(
		input: { items: { productId: string; variantId?: string; quantity: number }[]; customerEmail?: string | null },
		userId: string,
	) {
		// Merge repeated lines so stock is checked on the total.
		const lines = new Map<string, { productId: string; variantId?: string; quantity: number }>();
		for (const it of input.items) {
			const k = `${it.productId}|${it.variantId ?? ""}`;
			const prev = lines.get(k);
			lines.set(k, { ...it, quantity: (prev?.quantity ?? 0) + it.quantity });
		}
		const wanted = [...lines.values()];
		const productIds = [...new Set(wanted.map((l) => l.productId))];
		const variantIds = [...new Set(wanted.flatMap((l) => (l.variantId ? [l.variantId] : [])))];
		const [found, foundVariants] = await this.db.batch([
			this.db
				.select()
				.from(products)
				.where(and(this.own(products), inArray(products.id, productIds))),
			this.db
				.select()
				.from(variants)
				.where(and(this.own(variants), inArray(variants.id, variantIds.length ? variantIds : ["-"]))),
		]);
		const byId = new Map(found.map((p) => [p.id, p]));
		const variantById = new Map(foundVariants.map((v) => [v.id, v]));
		const errors: { path: string; message: string }[] = [];
		input.items.forEach((it, i) => {
			const p = byId.get(it.productId);
			if (!p) errors.push({ path: `items.${i}.productId`, message: "no such product" });
			else if (p.status !== "active") errors.push({ path: `items.${i}.productId`, message: `product is ${p.status}` });
			if (it.variantId) {
				const v = variantById.get(it.variantId);
				if (!v || v.productId !== it.productId)
					errors.push({ path: `items.${i}.variantId`, message: "no such variant of this product" });
			}
		});
		const currencies = new Set(found.map((p) => p.currency));
		if (errors.length === 0 && currencies.size > 1) errors.push({ path: "items", message: "all items must share one currency" });
		if (errors.length > 0) {
			throw new ApiError("VALIDATION_FAILED", errors.map((e) => `${e.path}: ${e.message}`).join("; "), { errors });
		}

		const now = Date.now();
		const orderId = newId("ord");
		const items = wanted.map((l) => {
			const p = byId.get(l.productId)!;
			const v = l.variantId ? variantById.get(l.variantId)! : undefined;
			const unit = v?.priceMinor ?? p.priceMinor;
			return {
				id: newId("itm"),
				organizationId: this.organizationId,
				orderId,
				productId: p.id,
				variantId: v?.id ?? null,
				name: v ? `${p.name} (${v.name})` : p.name,
				sku: v?.sku ?? p.sku,
				unitPriceMinor: unit,
				quantity: l.quantity,
				lineTotalMinor: unit * l.quantity,
			};
		});
		const total = items.reduce((s, it) => s + it.lineTotalMinor, 0);
		const currency = found[0]!.currency;
		try {
			await this.db.batch([
				this.db.insert(orders).values({
					id: orderId,
					organizationId: this.organizationId,
					status: "pending",
					currency,
					totalMinor: total,
					customerEmail: input.customerEmail ?? null,
					createdBy: userId,
					createdAt: now,
					updatedAt: now,
				}),
				this.db.insert(orderItems).values(items),
				this.db.insert(orderStatusHistory).values({
					id: newId("osh"),
					organizationId: this.organizationId,
					orderId,
					fromStatus: null,
					toStatus: "pending",
					changedBy: userId,
					at: now,
				}),
				...wanted.map((l) =>
					l.variantId
						? this.db
								.update(variants)
								.set({ stock: sql`${variants.stock} - ${l.quantity}`, version: sql`${variants.version} + 1` })
								.where(and(this.own(variants), eq(variants.id, l.variantId)))
						: this.db
								.update(products)
								.set({ stock: sql`${products.stock} - ${l.quantity}`, version: sql`${products.version} + 1` })
								.where(and(this.own(products), eq(products.id, l.productId))),
				),
			]);
		} catch (err) {
			constraintError(err, { check: "insufficient stock for one or more items" });
		}
		return this.getOrder(orderId);
	}

	/**
	 * Moves an order along ORDER_TRANSITIONS. The status update is guarded by the status (and version)
	 * it was read with, and the history row and any restock only happen if that update won, all in
	 * one atomic batch: two concurrent transitions cannot both apply.
	 */
	async transitionOrder(id: string, to: OrderStatus, userId: string, note?: string, ifVersion?: number) {
		const order = await this.getOrder(id);
		assertVersion(order, ifVersion, "order");
		if (!ORDER_TRANSITIONS[order.status].includes(to)) {
			throw new ApiError("CONFLICT", `cannot move an order from ${order.status} to ${to}`);
		}
		const now = Date.now();
		// Every statement is guarded by the state this transition was read from, and the order's own
		// UPDATE runs last: inside the batch's transaction either all of them see that state and apply,
		// or another transition got there first and none does. (A guard on the resulting state would not
		// do: two racing transitions to the same status produce the same result.)
		const unchanged = sql`EXISTS (SELECT 1 FROM orders WHERE id = ${id} AND organization_id = ${this.organizationId}
			AND status = ${order.status} AND version = ${order.version})`;
		const statements: SQL[] = [
			sql`INSERT INTO order_status_history (id, organization_id, order_id, from_status, to_status, changed_by, note, at)
				SELECT ${newId("osh")}, ${this.organizationId}, ${id}, ${order.status}, ${to}, ${userId}, ${note ?? null}, ${now} WHERE ${unchanged}`,
		];
		if (to === "cancelled") {
			for (const it of order.items) {
				statements.push(
					it.variantId
						? sql`UPDATE variants SET stock = stock + ${it.quantity} WHERE id = ${it.variantId} AND organization_id = ${this.organizationId} AND ${unchanged}`
						: sql`UPDATE products SET stock = stock + ${it.quantity} WHERE id = ${it.productId} AND organization_id = ${this.organizationId} AND ${unchanged}`,
				);
			}
		}
		statements.push(
			sql`UPDATE orders SET status = ${to}, version = ${order.version + 1}, updated_at = ${now}
				WHERE id = ${id} AND organization_id = ${this.organizationId} AND status = ${order.status} AND version = ${order.version}`,
		);
		const results = await runBatch(this.db.$client, statements);
		const update = results[results.length - 1];
		if (!update || update.meta.changes === 0) {
			throw new ApiError("CONFLICT", "the order changed concurrently; read it again and retry");
		}
		return this.getOrder(id);
	}
}
