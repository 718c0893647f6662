import { and, eq, getTableColumns, type SQL, sql } from "drizzle-orm";
import type { SQLiteColumn, SQLiteTable } from "drizzle-orm/sqlite-core";
import type { Database } from "../../db/client";
import { ApiError } from "../../errors";
import { newId } from "../../lib/ids";
import { type IdempotentCommit, storeResponse } from "../idempotency";

type Owned = SQLiteTable & { organizationId: SQLiteColumn };
type Versioned = Owned & { id: SQLiteColumn; version: SQLiteColumn; updatedAt: SQLiteColumn };

/**
 * Base of the store modules: the only way to read or write tenant-owned tables. It cannot be built
 * without an organization id (taken from the resolved membership, never from client input), and every
 * statement it issues is scoped by `organization_id = <that id>`: a guessed id of another tenant's row
 * is simply not found.
 */
export abstract class TenantScope {
	constructor(
		protected readonly db: Database,
		readonly organizationId: string,
	) {
		if (!organizationId) throw new Error("the store requires an organization id");
	}

	protected own(table: Owned): SQL {
		return eq(table.organizationId, this.organizationId);
	}

	/** The one row matching `where` (which includes this.own), or a 404 "`what` not found". */
	protected async findOne<T extends Owned>(table: T, where: SQL | undefined, what: string): Promise<T["$inferSelect"]> {
		const [row] = (await this.db
			.select()
			.from(table as SQLiteTable)
			.where(where)) as T["$inferSelect"][];
		if (!row) throw new ApiError("NOT_FOUND", `${what} not found`);
		return row;
	}

	/**
	 * Inserts one row owned by this organization (new id, created/updated now); a UNIQUE violation is a
	 * 409 `unique`. Every column is written explicitly (absent ones get their default, else null), so the
	 * row is known before the insert runs: with `commit`, the response rendered from it is stored in the
	 * same batch as the insert.
	 */
	protected async insertOwned<T extends Owned>(
		table: T,
		idPrefix: string,
		values: object,
		unique: string,
		commit?: IdempotentCommit<T["$inferSelect"]>,
	): Promise<T["$inferSelect"]> {
		const now = Date.now();
		const given: Record<string, unknown> = { ...values, id: newId(idPrefix), organizationId: this.organizationId, createdAt: now, updatedAt: now };
		const row = Object.fromEntries(
			Object.entries(getTableColumns(table)).map(([k, col]) => [k, given[k] ?? (col.hasDefault ? col.default : null)]),
		) as T["$inferSelect"];
		const insert = this.db.insert(table).values(row as never);
		try {
			if (commit) {
				await this.db.batch([insert, storeResponse(this.db, commit.claim, commit.status, JSON.stringify(commit.render(row)))]);
			} else {
				await insert;
			}
			return row;
		} catch (err) {
			constraintError(err, { unique });
		}
	}

	/**
	 * The versioned update: applies `patch` (only the fields it has) to the row matching `where` (which
	 * includes this.own), bumps `version` and `updatedAt`; an empty patch changes nothing and returns the row. With `ifVersion` set, only that version is updated: a row that
	 * exists in another version is a 412, a missing row a 404; a UNIQUE violation is a 409 `unique`.
	 */
	protected async versionedUpdate<T extends Versioned>(
		table: T,
		where: SQL | undefined,
		patch: object,
		ifVersion: number | undefined,
		what: string,
		unique: string,
	): Promise<T["$inferSelect"]> {
		// Exactly the fields given: an absent (or undefined) field is not written.
		const fields = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
		if (Object.keys(fields).length === 0) {
			const current = await this.findOne(table, where, what);
			assertVersion(current as { version: number }, ifVersion, what);
			return current;
		}
		try {
			const rows = (await this.db
				.update(table)
				.set({ ...fields, version: sql`${table.version} + 1`, updatedAt: Date.now() } as never)
				.where(and(where, ifVersion === undefined ? undefined : eq(table.version, ifVersion)))
				.returning()) as T["$inferSelect"][];
			if (rows[0]) return rows[0];
			const found = await this.db
				.select({ id: table.id })
				.from(table as SQLiteTable)
				.where(where);
			if (found.length === 0) throw new ApiError("NOT_FOUND", `${what} not found`);
			throw stale(what);
		} catch (err) {
			if (err instanceof ApiError) throw err;
			constraintError(err, { unique });
		}
	}
}

/** Maps D1 constraint failures to API errors; anything else propagates as a 500. */
export function constraintError(err: unknown, messages: { unique?: string; check?: string }): never {
	const msg = err instanceof Error ? `${err.message} ${(err.cause as Error | undefined)?.message ?? ""}` : String(err);
	if (/NOT NULL constraint failed: idempotency_keys\.request_hash/i.test(msg)) {
		// storeResponse: this request's Idempotency-Key claim was taken over (lease expired); nothing was committed.
		throw new ApiError("CONFLICT", "the Idempotency-Key's claim expired and a retry took it over; nothing was changed");
	}
	if (messages.unique && /UNIQUE constraint failed/i.test(msg)) throw new ApiError("CONFLICT", messages.unique);
	if (messages.check && /CHECK constraint failed/i.test(msg)) throw new ApiError("CONFLICT", messages.check);
	throw err;
}

const stale = (what: string) =>
	new ApiError("PRECONDITION_FAILED", `${what} was modified: If-Match does not match its current ETag`);

/** 412 when an If-Match version was given and the row has moved on. */
export function assertVersion(row: { version: number }, ifVersion: number | undefined, what: string): void {
	if (ifVersion !== undefined && row.version !== ifVersion) throw stale(what);
}
