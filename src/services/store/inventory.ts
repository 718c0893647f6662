import { type SQL, sql } from "drizzle-orm";
import { runBatch } from "../../db/batch";
import { ApiError } from "../../errors";
import { type IdempotencyClaim, storeResponse } from "../idempotency";
import type { ChangeLog } from "../outbox";
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
	/**
	 * Atomic stock change; a result below zero is refused (409) by the table's CHECK constraint. A delta
	 * of 0 changes nothing (no version bump) and answers the current stock. With `claim` (an
	 * Idempotency-Key), the answer `{ productId, variantId, stock }` is stored in the same batch as the change,
	 * as is its `inventory.adjusted` audit entry (before: the delta, after: the resulting stock).
	 */
	async adjustStock(
		productId: string,
		delta: number,
		log: ChangeLog,
		variantId?: string,
		claim?: IdempotencyClaim,
	): Promise<{ stock: number; version: number }> {
		const table = sql.raw(variantId ? "variants" : "products");
		const target = sql`organization_id = ${this.organizationId} AND ${
			variantId ? sql`id = ${variantId} AND product_id = ${productId}` : sql`id = ${productId}`
		}`;
		const notFound = () => new ApiError("NOT_FOUND", variantId ? "variant not found" : "product not found");
		if (delta === 0) {
			const [row] = await runBatch<{ stock: number; version: number }>(this.db.$client, [
				sql`SELECT stock, version FROM ${table} WHERE ${target}`,
			]);
			const current = row?.results[0];
			if (!current) throw notFound();
			return current;
		}
		const statements: SQL[] = [
			sql`UPDATE ${table} SET stock = stock + ${delta}, version = version + 1, updated_at = ${Date.now()} WHERE ${target} RETURNING stock, version`,
			...this.outboxStatements(
				log,
				{ action: "inventory.adjusted", targetType: variantId ? "variant" : "product", targetId: variantId ?? productId, before: { delta } },
				{ after: sql`json_object('stock', (SELECT stock FROM ${table} WHERE ${target}))`, when: sql`EXISTS (SELECT 1 FROM ${table} WHERE ${target})` },
			),
		];
		if (claim) {
			const body = sql`json_object('productId', ${productId}, 'variantId', ${variantId ?? null}, 'stock', (SELECT stock FROM ${table} WHERE ${target}))`;
			statements.push(storeResponse(this.db, claim, 200, body, sql`EXISTS (SELECT 1 FROM ${table} WHERE ${target})`).getSQL());
		}
		try {
			const [update] = await this.commitBatch(statements, log);
			const row = update?.results[0] as { stock: number; version: number } | undefined;
			if (!row) throw notFound();
			return row;
		} catch (err) {
			if (err instanceof ApiError) throw err;
			constraintError(err, { check: "insufficient stock: the result would be negative" });
		}
	}

	/**
	 * Statements taking an order's lines out of stock (and bumping the rows' versions), for the order's
	 * batch: one per table whatever the number of lines, the lines bound as one JSON parameter (D1 allows
	 * 100 bound parameters per statement).
	 */
	takeStatements(lines: StockLine[]): SQL[] {
		return this.stockStatements(lines, "-", sql`1 = 1`);
	}

	/** Statements putting a cancelled order's lines back in stock (bumping the versions), each applied only while `guard` holds. */
	restockStatements(lines: StockLine[], guard: SQL): SQL[] {
		return this.stockStatements(lines, "+", guard);
	}

	private stockStatements(lines: StockLine[], sign: "+" | "-", guard: SQL): SQL[] {
		const out: SQL[] = [];
		const op = sql.raw(sign);
		for (const [table, pick] of [
			["products", (l: StockLine) => (l.variantId ? undefined : l.productId)],
			["variants", (l: StockLine) => l.variantId ?? undefined],
		] as const) {
			const rows = lines.flatMap((l) => {
				const id = pick(l);
				return id ? [{ id, q: l.quantity }] : [];
			});
			if (rows.length === 0) continue;
			const json = JSON.stringify(rows);
			out.push(sql`UPDATE ${sql.raw(table)} SET stock = stock ${op} (
					SELECT sum(json_extract(value, '$.q')) FROM json_each(${json}) WHERE json_extract(value, '$.id') = ${sql.raw(table)}.id
				), version = version + 1
				WHERE organization_id = ${this.organizationId}
					AND id IN (SELECT json_extract(value, '$.id') FROM json_each(${json})) AND ${guard}`);
		}
		return out;
	}
}
