import { and, eq, getTableColumns, inArray, type SQL, sql } from "drizzle-orm";
import type { SQLiteColumn, SQLiteTable } from "drizzle-orm/sqlite-core";
import { runBatch, type Statement, typedRow } from "../../db/batch";
import { insertRows } from "../../db/insert";
import type { Database } from "../../db/client";
import { ApiError } from "../../errors";
import { type IfMatch, matches } from "../../lib/etag";
import { newId } from "../../lib/ids";
import { type AuditInput, changeOutbox } from "../events-bus";
import { type IdempotentCommit, storeResponse } from "../idempotency";
import { type ChangeLog, collectOutbox } from "../outbox";

type Owned = SQLiteTable & { organizationId: SQLiteColumn };

/** A change's audit entry (the organization is the store's), and optionally its outgoing webhook event. */
export interface ChangeAudit extends Omit<AuditInput, "organizationId"> {
	event?: { type: string; data: unknown };
}

/** organization_id stays internal: audit entries and responses never carry it. */
export function strip<T extends { organizationId: string }>(row: T): Omit<T, "organizationId"> {
	const { organizationId: _, ...rest } = row;
	return rest;
}

/** A row as the API renders it (strip), computed by SQL in the batch: `(SELECT json_object(...) FROM table WHERE where)`. */
export function rowJsonSql(table: Owned, where: SQL | undefined): SQL {
	const pairs = Object.entries(getTableColumns(table))
		.filter(([key]) => key !== "organizationId")
		.map(([key, col]) => sql`${sql.raw(`'${key}'`)}, ${sql.identifier(col.name)}`);
	return sql`(SELECT json_object(${sql.join(pairs, sql`, `)}) FROM ${table} WHERE ${where})`;
}

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

	/**
	 * The outbox statements of a change, for its own batch: its audit entry (the caller from `log` as
	 * actor) and its outgoing event, written only while `when` holds; `after` (SQL) replaces the audit
	 * entry's `after` with a value computed in the batch.
	 */
	protected outboxStatements(log: ChangeLog, audit: ChangeAudit, opts: { after?: SQL; when?: SQL } = {}): SQL[] {
		const { event, ...input } = audit;
		return changeOutbox(log, { ...input, organizationId: this.organizationId }, event, opts);
	}

	/** `EXISTS (a row of table matching where)`, to guard a change's outbox rows on the state it was read in. */
	protected exists(table: Owned, where: SQL | undefined): SQL {
		return sql`EXISTS (SELECT 1 FROM ${table} WHERE ${where})`;
	}

	/** Runs a change's statements as one atomic batch and records the outbox rows it wrote in `log`, for the relay. */
	protected async commitBatch(statements: Statement[], log: ChangeLog): Promise<D1Result[]> {
		const results = await runBatch(this.db.$client, statements);
		collectOutbox(log, results);
		return results;
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
	 * row is known before the insert runs: its `<type>.created` audit entry (after: the row), `audit.event`
	 * and, with `commit`, the response rendered from it are written in the same batch as the insert.
	 */
	protected async insertOwned<T extends Owned>(
		table: T,
		idPrefix: string,
		values: object,
		unique: string,
		change: { type: string; log: ChangeLog },
		commit?: IdempotentCommit<T["$inferSelect"]>,
	): Promise<T["$inferSelect"]> {
		const now = Date.now();
		const given: Record<string, unknown> = { ...values, id: newId(idPrefix), organizationId: this.organizationId, createdAt: now, updatedAt: now };
		const row = Object.fromEntries(
			Object.entries(getTableColumns(table)).map(([k, col]) => [k, given[k] ?? (col.hasDefault ? col.default : null)]),
		) as T["$inferSelect"];
		const { id } = row as { id: string };
		const statements: Statement[] = [
			insertRows(table, [row]),
			...this.outboxStatements(change.log, {
				action: `${change.type}.created`,
				targetType: change.type,
				targetId: id,
				after: strip(row as { organizationId: string }),
			}),
		];
		if (commit) statements.push(storeResponse(this.db, commit.claim, commit.status, JSON.stringify(commit.render(row))).getSQL());
		try {
			await this.commitBatch(statements, change.log);
			return row;
		} catch (err) {
			constraintError(err, { unique });
		}
	}

	/**
	 * The versioned update: applies `patch` (only the fields it has) to the row matching `where` (which
	 * includes this.own), bumps `version` and `updatedAt`; an empty patch changes nothing and returns the row. With `ifMatch` set, only a row at one of its versions is updated: a row that
	 * exists in another version is a 412, a missing row a 404; a UNIQUE violation is a 409 `unique`.
	 * The `<what>.updated` audit entry (before: `change.before`, after: the row as updated) is written in
	 * the update's own batch, only if the update applied.
	 */
	protected async versionedUpdate<T extends Versioned>(
		table: T,
		where: SQL | undefined,
		patch: object,
		ifMatch: IfMatch,
		what: string,
		unique: string,
		change: { log: ChangeLog; id: string; before: unknown },
	): Promise<T["$inferSelect"]> {
		// Exactly the fields given: an absent (or undefined) field is not written.
		const fields = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
		const audit = { action: `${what}.updated`, targetType: what, targetId: change.id, before: change.before };
		if (Object.keys(fields).length === 0) {
			const current = await this.findOne(table, where, what);
			assertVersion(current as { version: number }, ifMatch, what);
			await this.commitBatch(this.outboxStatements(change.log, { ...audit, after: strip(current as { organizationId: string }) }), change.log);
			return current;
		}
		const now = Date.now();
		// The entry is written only if this update applied (with If-Match: moved the row from one of its versions);
		// an update that matched no row (404) writes none.
		const applied = sql`EXISTS (SELECT 1 FROM ${table} WHERE ${where} AND ${ifMatch === undefined ? sql`1` : inArray(table.version, ifMatch.map((v) => v + 1))} AND ${table.updatedAt} = ${now})`;
		try {
			const update = this.db
				.update(table)
				.set({ ...fields, version: sql`${table.version} + 1`, updatedAt: now } as never)
				.where(and(where, ifMatch === undefined ? undefined : inArray(table.version, [...ifMatch])))
				.returning()
				.getSQL();
			const [updated] = await this.commitBatch(
				[update, ...this.outboxStatements(change.log, audit, { after: rowJsonSql(table, where), when: applied })],
				change.log,
			);
			const raw = updated?.results[0] as Record<string, unknown> | undefined;
			if (raw) return typedRow(table, raw);
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

/** 412 when an If-Match precondition was given and the row is at none of its versions. */
export function assertVersion(row: { version: number }, ifMatch: IfMatch, what: string): void {
	if (!matches(ifMatch, row.version)) throw stale(what);
}
