import { and, asc, desc, type SQL } from "drizzle-orm";
import type { SQLiteColumn, SQLiteTable } from "drizzle-orm/sqlite-core";
import type { Database } from "../db/client";
import { keysetAfter } from "../db/keyset";
import { decodeCursor, page } from "../lib/cursor";

export interface PageQuery {
	cursor?: string;
	limit: number;
}

/**
 * One page of a keyset-paginated list: rows matching `where`, ordered by (key, id) in `direction` on
 * both columns, strictly after the cursor, at most `limit` (one more row is read to know if more remain).
 * @example keysetPage(db, orders, "createdAt", "asc", eq(orders.organizationId, org), { cursor, limit })
 */
export async function keysetPage<
	T extends SQLiteTable & { id: SQLiteColumn },
	K extends keyof T & keyof T["$inferSelect"] & string,
>(
	db: Database,
	table: T,
	key: K,
	direction: "asc" | "desc",
	where: SQL | undefined,
	q: PageQuery,
): Promise<{ data: T["$inferSelect"][]; nextCursor: string | null }> {
	const keyCol = table[key] as SQLiteColumn;
	const by = direction === "asc" ? asc : desc;
	const rows: T["$inferSelect"][] = await db
		.select()
		.from(table as SQLiteTable)
		.where(and(where, keysetAfter(keyCol, table.id, decodeCursor(q.cursor), direction)))
		.orderBy(by(keyCol), by(table.id))
		.limit(q.limit + 1);
	return page(rows, q.limit, (r) => ({ k: r[key] as number, id: (r as { id: string }).id }));
}
