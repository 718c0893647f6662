import { getTableColumns, getTableName, is, SQL } from "drizzle-orm";
import type { SQLiteColumn, SQLiteTable } from "drizzle-orm/sqlite-core";

/**
 * A statement already in D1's terms: its text with `?` placeholders and the values to bind. runBatch
 * (db/batch.ts) prepares it as it is, without walking a drizzle `SQL` tree.
 */
export class Compiled {
	constructor(
		readonly text: string,
		readonly params: unknown[],
	) {}
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

interface Shape {
	columns: [key: string, column: SQLiteColumn][];
	/** `insert into "t" ("a", "b") values `: the text before the rows. */
	head: string;
	/** `(?, ?)`: one row's placeholders. */
	row: string;
}
const shapes = new WeakMap<SQLiteTable, Shape>();

function shapeOf(table: SQLiteTable): Shape {
	let shape = shapes.get(table);
	if (!shape) {
		// As drizzle: a generated column (other than "by default") is not inserted.
		const columns = Object.entries(getTableColumns(table) as Record<string, SQLiteColumn>).filter(
			([, c]) => c.generated === undefined || c.generated.type === "byDefault",
		);
		shape = {
			columns,
			head: `insert into ${quote(getTableName(table))} (${columns.map(([, c]) => quote(c.name)).join(", ")}) values `,
			row: `(${columns.map(() => "?").join(", ")})`,
		};
		shapes.set(table, shape);
	}
	return shape;
}

/**
 * `insert into <table> (<every column>) values (…), …`: the statement drizzle's
 * `db.insert(table).values(rows)` builds, text included, for rows that give every column a value (null
 * included) and no `sql` value, with each value mapped as drizzle maps it (`mapToDriverValue`). The text
 * is made once per table and row count: a hot insert (a tenant write, its audit entry) skips drizzle's
 * query building, which cost more CPU than SQLite running the insert (issue 17).
 * @example await runBatch(d1, [insertRows(products, [row]), …])
 */
export function insertRows<T extends SQLiteTable>(table: T, rows: readonly T["$inferInsert"][]): Compiled {
	if (rows.length === 0) throw new Error("insertRows: no rows");
	const { columns, head, row } = shapeOf(table);
	const params: unknown[] = [];
	for (const r of rows as readonly Record<string, unknown>[]) {
		for (const [key, column] of columns) {
			const value = r[key];
			if (value === undefined || is(value, SQL)) throw new Error(`insertRows: ${getTableName(table)}.${key} needs drizzle's insert (absent or SQL)`);
			params.push(value === null ? null : column.mapToDriverValue(value));
		}
	}
	return new Compiled(head + Array.from(rows, () => row).join(", "), params);
}
