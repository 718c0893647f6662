/**
 * D1's statement API over a Durable Object's SQLite (ctx.storage.sql), so the store's services (drizzle
 * on `drizzle-orm/d1`, raw batches from db/batch.ts) run unchanged inside a tenant store object.
 *
 * Every statement runs synchronously against the object's own database; `batch()` runs its statements
 * in one `transactionSync` (all or none, as D1's batch). `meta` carries what D1 reports: rows read and
 * written (the object's own counters, the figures Cloudflare bills), `changes` and `last_row_id`.
 */

type Bound = string | number | null | ArrayBuffer;

function bindable(v: unknown): Bound {
	if (v === undefined) throw new TypeError("D1_TYPE_ERROR: undefined cannot be bound");
	if (typeof v === "boolean") return v ? 1 : 0;
	if (typeof v === "bigint") return Number(v);
	if (v instanceof Uint8Array) return v.slice().buffer;
	return v as Bound;
}

interface Totals {
	rowsRead: number;
	rowsWritten: number;
}

class SqlStatement {
	constructor(
		private readonly owner: SqlD1,
		readonly query: string,
		private readonly params: Bound[] = [],
	) {}

	bind(...values: unknown[]): SqlStatement {
		return new SqlStatement(this.owner, this.query, values.map(bindable));
	}

	/** Runs now; used by the async methods and by batch(). */
	exec(): D1Result<Record<string, unknown>> {
		const started = Date.now();
		const cursor = this.owner.sql.exec(this.query, ...this.params);
		const results = cursor.toArray() as Record<string, unknown>[];
		// changes() and last_insert_rowid() only for a statement that wrote (a read reports 0 for both): one
		// statement less for every read (issue 17).
		const [counters] =
			cursor.rowsWritten > 0
				? (this.owner.sql.exec("SELECT changes() AS c, last_insert_rowid() AS r").toArray() as { c: number; r: number }[])
				: [];
		this.owner.totals.rowsRead += cursor.rowsRead;
		this.owner.totals.rowsWritten += cursor.rowsWritten;
		return {
			results,
			success: true,
			meta: {
				duration: Date.now() - started,
				size_after: 0,
				rows_read: cursor.rowsRead,
				rows_written: cursor.rowsWritten,
				last_row_id: counters?.r ?? 0,
				changed_db: cursor.rowsWritten > 0,
				changes: cursor.rowsWritten > 0 ? (counters?.c ?? 0) : 0,
			},
		} as D1Result<Record<string, unknown>>;
	}

	async all<T = Record<string, unknown>>(): Promise<D1Result<T>> {
		return this.exec() as unknown as D1Result<T>;
	}

	async run<T = Record<string, unknown>>(): Promise<D1Result<T>> {
		return this.exec() as unknown as D1Result<T>;
	}

	async first<T = Record<string, unknown>>(column?: string): Promise<T | null> {
		const row = this.exec().results[0];
		if (!row) return null;
		return (column ? row[column] : row) as T;
	}

	async raw<T = unknown[]>(options?: { columnNames?: boolean }): Promise<T[]> {
		const cursor = this.owner.sql.exec(this.query, ...this.params);
		const rows = [...cursor.raw()] as unknown as T[];
		this.owner.totals.rowsRead += cursor.rowsRead;
		this.owner.totals.rowsWritten += cursor.rowsWritten;
		return options?.columnNames ? ([cursor.columnNames as unknown as T, ...rows] as T[]) : rows;
	}
}

/** A D1Database-shaped handle on one Durable Object's SQLite database. */
export class SqlD1 {
	/** Rows read and written through this handle since it was made (or since resetTotals). */
	readonly totals: Totals = { rowsRead: 0, rowsWritten: 0 };

	constructor(
		readonly sql: SqlStorage,
		private readonly storage: DurableObjectStorage,
	) {}

	prepare(query: string): SqlStatement {
		return new SqlStatement(this, query);
	}

	async batch<T = unknown>(statements: SqlStatement[]): Promise<D1Result<T>[]> {
		return this.storage.transactionSync(() => statements.map((s) => s.exec())) as unknown as D1Result<T>[];
	}

	async exec(query: string): Promise<D1ExecResult> {
		const cursor = this.sql.exec(query);
		cursor.toArray();
		return { count: 1, duration: 0 };
	}

	withSession(): SqlD1 {
		return this;
	}

	async dump(): Promise<ArrayBuffer> {
		throw new Error("dump() is not available on a tenant store");
	}

	/** This handle as drizzle's D1 driver and db/batch.ts type it. */
	asD1(): D1Database {
		return this as unknown as D1Database;
	}
}
