import { getTableColumns, type SQL } from "drizzle-orm";
import { type SQLiteTable, SQLiteSyncDialect } from "drizzle-orm/sqlite-core";
import { Compiled } from "./insert";

const dialect = new SQLiteSyncDialect();

/** A statement runBatch takes: a drizzle `sql` template, or one already compiled (db/insert.ts). */
export type Statement = SQL | Compiled;

/** A D1 statement from a drizzle `sql` template (parameters bound, never interpolated) or a compiled one. */
export function prepare(d1: D1Database, query: Statement): D1PreparedStatement {
	if (query instanceof Compiled) return d1.prepare(query.text).bind(...query.params);
	const { sql, params } = dialect.sqlToQuery(query);
	return d1.prepare(sql).bind(...params);
}

/**
 * Runs raw `sql` statements as one D1 batch: one round trip, atomic (all or none).
 * drizzle's own db.batch() cannot take parameterised raw `sql` items (drizzle-orm 0.45), hence this.
 */
export function runBatch<T = Record<string, unknown>>(d1: D1Database, queries: Statement[]): Promise<D1Result<T>[]> {
	return d1.batch<T>(queries.map((q) => prepare(d1, q)));
}

/** A raw row of a batch result (column names) as drizzle types it (field names). */
export function typedRow<T extends SQLiteTable>(table: T, raw: Record<string, unknown>): T["$inferSelect"] {
	return Object.fromEntries(Object.entries(getTableColumns(table)).map(([key, col]) => [key, raw[col.name]])) as T["$inferSelect"];
}
