import { and, eq, type SQL, sql } from "drizzle-orm";
import { products, variants } from "../../db/schema";
import { ApiError } from "../../errors";
import { constraintError, TenantScope } from "./shared";

/** A stock line: a product, or one of its variants when variantId is set. */
interface StockLine {
	productId: string;
	variantId?: string | null;
	quantity: number;
}

/**
 * Stock of products and variants. A row's stock can never go below zero: the tables' CHECK
 * constraint refuses it, and the callers turn that into a 409.
 */
export class Inventory extends TenantScope {
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

	/** Statements taking an order's lines out of stock (and bumping the rows' versions), for the order's batch. */
	takeStatements(lines: StockLine[]) {
		return lines.map((l) =>
			l.variantId
				? this.db
						.update(variants)
						.set({ stock: sql`${variants.stock} - ${l.quantity}`, version: sql`${variants.version} + 1` })
						.where(and(this.own(variants), eq(variants.id, l.variantId)))
				: this.db
						.update(products)
						.set({ stock: sql`${products.stock} - ${l.quantity}`, version: sql`${products.version} + 1` })
						.where(and(this.own(products), eq(products.id, l.productId))),
		);
	}

	/** Raw statements putting a cancelled order's lines back in stock, each applied only while `guard` holds. */
	restockStatements(lines: StockLine[], guard: SQL): SQL[] {
		return lines.map((l) =>
			l.variantId
				? sql`UPDATE variants SET stock = stock + ${l.quantity} WHERE id = ${l.variantId} AND organization_id = ${this.organizationId} AND ${guard}`
				: sql`UPDATE products SET stock = stock + ${l.quantity} WHERE id = ${l.productId} AND organization_id = ${this.organizationId} AND ${guard}`,
		);
	}
}
