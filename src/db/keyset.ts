import { type SQL, sql } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import type { Cursor } from "../lib/cursor";

/**
 * The keyset condition of every paginated list: rows strictly after the cursor in (sort key, id)
 * order. Written as a row-value comparison so SQLite walks an index on (…, sortKey, id) as a range
 * and a page reads at most limit + 1 rows at any depth (`k > ? OR (k = ? AND id > ?)` walks the
 * index from its start instead).
 * @example .where(and(eq(t.organizationId, org), keysetAfter(t.createdAt, t.id, cursor, "asc"))).orderBy(asc(t.createdAt), asc(t.id))
 */
export function keysetAfter(
	key: SQLiteColumn,
	id: SQLiteColumn,
	cursor: Cursor | null,
	direction: "asc" | "desc",
): SQL | undefined {
	if (!cursor) return undefined;
	return direction === "asc"
		? sql`(${key}, ${id}) > (${cursor.k}, ${cursor.id})`
		: sql`(${key}, ${id}) < (${cursor.k}, ${cursor.id})`;
}
