import { and, asc, eq, type SQL, sql } from "drizzle-orm";
import { runBatch } from "../db/batch";
import type { Database } from "../db/client";
import { keysetAfter } from "../db/keyset";
import { outbox } from "../db/schema";
import type { Env } from "../env";
import { ApiError } from "../errors";
import { decodeCursor, page } from "../lib/cursor";
import { errorFields, type Logger } from "../lib/logger";
import type { RequestMeta } from "../lib/request-meta";
import type { TenantEvent } from "../queue/tenant-events";

/**
 * The transactional outbox of the tenant-events queue. A change writes its events (audit entry,
 * outgoing event) as outbox rows in its own D1 batch (outboxInsert), so they commit or roll back with
 * it; the request then relays them (relayOutbox, in waitUntil) and the cron re-sends whatever is still
 * pending (drainOutbox). A row is deleted only after the queue accepted it; consumers are idempotent on
 * the event id, so a second send (relay and cron racing, an isolate dying before the delete) is harmless.
 */

/**
 * Relays of one event that may come back from the dead-letter queue before it is kept `failed`
 * (each relay is itself retried by the queue: tenant-events max_retries).
 */
export const OUTBOX_MAX_RELAYS = 10;

/** The outbox row id of an event: the event's own id, so the same event is parked once. */
const outboxKey = (m: TenantEvent) => (m.kind === "webhook.deliver" ? m.deliveryId : m.id);

/** An outbox row a change committed, to be relayed. */
export interface OutboxRow {
	id: string;
	body: string;
	attempts: number;
}

/**
 * The events of one request's change: who made it (for the audit entry), and the outbox rows its
 * batch wrote (filled by the store once the batch committed), for the relay.
 */
export interface ChangeLog {
	meta: RequestMeta;
	written: OutboxRow[];
}

export const changeLog = (meta: RequestMeta): ChangeLog => ({ meta, written: [] });

/**
 * The statement writing one event to the outbox, for the change's own batch; it returns the row
 * (collectOutbox reads it from the batch's results). `after`, when given, is SQL evaluated in the
 * batch (e.g. the updated row as JSON) set at the message's `after`; `set` sets other fields of the
 * message (JSON path -> SQL value, e.g. `{ "$.before.status": sql\`(SELECT status ...)\` }`) the same
 * way; with `when`, the row is written only while that condition holds. An event already in the
 * outbox (same id: an event id derived from a webhook's svix id, applied again by a replay) is kept
 * as it is: the statement then writes and returns nothing, and the pending row is the cron's.
 */
export function outboxInsert(message: TenantEvent, opts: { after?: SQL; set?: Record<string, SQL>; when?: SQL } = {}): SQL {
	const json = JSON.stringify(message);
	const sets: SQL[] = [];
	if (opts.after) sets.push(sql`'$.after', json(${opts.after})`);
	for (const [path, value] of Object.entries(opts.set ?? {})) sets.push(sql`${path}, ${value}`);
	const body = sets.length > 0 ? sql`json_set(${json}, ${sql.join(sets, sql`, `)})` : sql`${json}`;
	return sql`INSERT INTO outbox (id, organization_id, body, created_at, attempts, status)
		SELECT ${outboxKey(message)}, ${message.organizationId}, ${body}, ${Date.now()}, 0, 'pending' WHERE ${opts.when ?? sql`1`}
		ON CONFLICT (id) DO NOTHING
		RETURNING id AS outbox_id, body AS outbox_body`;
}

/**
 * One outbox row per organization that `organizations` (SQL: a SELECT whose column is
 * `organization_id`) yields in the batch: `message` for that organization, its id
 * `<message.id>_<organization id>`. For events whose organizations are known only to the batch (a
 * user's sign-in, audited in each organization the user belongs to).
 */
export function outboxInsertPerOrganization(message: TenantEvent, organizations: SQL): SQL {
	const id = sql`${outboxKey(message)} || '_' || o.organization_id`;
	return sql`INSERT INTO outbox (id, organization_id, body, created_at, attempts, status)
		SELECT ${id}, o.organization_id, json_set(${JSON.stringify(message)}, '$.id', ${id}, '$.organizationId', o.organization_id),
			${Date.now()}, 0, 'pending'
		FROM (${organizations}) o WHERE 1
		ON CONFLICT (id) DO NOTHING
		RETURNING id AS outbox_id, body AS outbox_body`;
}

/** The outbox rows a committed batch wrote (the RETURNING rows of outboxInsert and outboxInsertPerOrganization). */
export function outboxRows(results: D1Result[]): OutboxRow[] {
	const rows: OutboxRow[] = [];
	for (const r of results) {
		for (const row of (r.results ?? []) as { outbox_id?: string; outbox_body?: string }[]) {
			if (row.outbox_id && row.outbox_body) rows.push({ id: row.outbox_id, body: row.outbox_body, attempts: 0 });
		}
	}
	return rows;
}

/** Adds the outbox rows a committed batch wrote to the change log. */
export function collectOutbox(log: ChangeLog, results: D1Result[]): void {
	log.written.push(...outboxRows(results));
}

/** The sent rows, as they were sent (`[[id, attempts], …]` as JSON): constant text, run after every change a tenant store relays. */
const DELETE_SENT = `DELETE FROM outbox WHERE status = 'pending' AND (id, attempts) IN
	(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))`;

/**
 * What one queue send may carry (Cloudflare Queues: 100 messages and 256 KB a batch, 128 KB a message,
 * measured as JSON), with room left for each message's envelope.
 */
const QUEUE_BATCH_MESSAGES = 100;
const QUEUE_BATCH_BYTES = 240_000;
const QUEUE_MESSAGE_BYTES = 120_000;

const utf8 = new TextEncoder();

/**
 * Queues with no such limits: a tenant store's own (tenant-store/object.ts), which applies what it is sent
 * in the object itself.
 */
export const unlimitedQueues = new WeakSet<object>();

/**
 * Hands outbox rows to the queue and deletes them once it accepted them. Each message carries its
 * relay number (`relays`) for the dead-letter consumer. Rows go in batches within the queue's limits,
 * oldest first. A refused send leaves its rows and the rest pending (with the error) for the cron;
 * the rows' relay count is not spent by it. A row too large for any queue message can never be sent:
 * it is kept `failed` with the reason (operator health counts it), so it holds back none of the
 * newer rows. Returns how many were sent.
 */
export async function relayOutbox(env: Env, db: Database, rows: OutboxRow[], logger?: Logger): Promise<number> {
	if (rows.length === 0) return 0;
	const limited = !unlimitedQueues.has(env.TENANT_EVENTS);
	const batches: { row: OutboxRow; body: TenantEvent }[][] = [];
	// Rows that can never be sent, each with why: kept failed (operator health counts them).
	const unsendable: { row: OutboxRow; reason: string }[] = [];
	let batch: { row: OutboxRow; body: TenantEvent }[] = [];
	let batchBytes = 0;
	for (const row of rows) {
		let body: TenantEvent;
		try {
			body = { ...(JSON.parse(row.body) as TenantEvent), relays: row.attempts + 1 };
		} catch {
			unsendable.push({ row, reason: "the body is not JSON" });
			continue;
		}
		const bytes = limited ? utf8.encode(JSON.stringify(body)).byteLength : 0;
		if (bytes > QUEUE_MESSAGE_BYTES) {
			unsendable.push({ row, reason: `too large for a queue message: ${bytes} bytes (at most ${QUEUE_MESSAGE_BYTES})` });
			continue;
		}
		if (limited && (batch.length === QUEUE_BATCH_MESSAGES || batchBytes + bytes > QUEUE_BATCH_BYTES)) {
			batches.push(batch);
			batch = [];
			batchBytes = 0;
		}
		batch.push({ row, body });
		batchBytes += bytes;
	}
	if (batch.length > 0) batches.push(batch);
	if (unsendable.length > 0) {
		logger?.error("tenant events that can never be sent are kept failed in the outbox", { ids: unsendable.map((u) => u.row.id) });
		for (const { row, reason } of unsendable) {
			await db.run(sql`UPDATE outbox SET status = 'failed', last_error = ${reason}, updated_at = ${Date.now()} WHERE id = ${row.id} AND status = 'pending'`);
		}
	}
	let sent = 0;
	for (const [i, b] of batches.entries()) {
		try {
			await env.TENANT_EVENTS.sendBatch(b.map(({ body }) => ({ body, contentType: "json" as const })));
		} catch (err) {
			logger?.warn("tenant-events queue unavailable, the outbox keeps the events", errorFields(err));
			const message = (err instanceof Error ? err.message : String(err)).slice(0, 500);
			const unsent = batches.slice(i).flat().map(({ row }) => row.id);
			await db.run(sql`UPDATE outbox SET last_error = ${message}, updated_at = ${Date.now()}
				WHERE id IN (SELECT value FROM json_each(${JSON.stringify(unsent)})) AND status = 'pending'`);
			return sent;
		}
		// Only the rows as they were sent: one the dead-letter consumer parked again meanwhile stays.
		await db.$client.prepare(DELETE_SENT).bind(JSON.stringify(b.map(({ row }) => [row.id, row.attempts]))).run();
		sent += b.length;
	}
	return sent;
}

/** The oldest pending rows, oldest first. */
export function pendingInOutbox(db: Database, limit: number): Promise<OutboxRow[]> {
	return db
		.select({ id: outbox.id, body: outbox.body, attempts: outbox.attempts })
		.from(outbox)
		.where(eq(outbox.status, "pending"))
		.orderBy(asc(outbox.createdAt), asc(outbox.id))
		.limit(limit);
}

// 100 bound parameters per statement: 5 per row.
const PARK_CHUNK = 20;

/**
 * Parks tenant events in the outbox (the cron, or a store's alarm, sends them); an event already there is kept
 * once. Returns the rows as parked, for relayOutbox.
 */
export async function parkInOutbox(db: Database, messages: TenantEvent[]): Promise<OutboxRow[]> {
	if (messages.length === 0) return [];
	const now = Date.now();
	const rows = messages.map((m) => ({ id: outboxKey(m), organizationId: m.organizationId, body: JSON.stringify(m), createdAt: now }));
	for (let i = 0; i < rows.length; i += PARK_CHUNK) {
		await db
			.insert(outbox)
			.values(rows.slice(i, i + PARK_CHUNK))
			.onConflictDoNothing();
	}
	return rows.map(({ id, body }) => ({ id, body, attempts: 0 }));
}

/**
 * Dead letters back into the outbox, with the number of relays they had: below OUTBOX_MAX_RELAYS they
 * are pending again (the cron re-sends them), at the bound they stay `failed` for an operator
 * (GET /api/admin/health counts them, POST /api/admin/outbox/:id/replay re-arms one).
 */
export async function parkDeadLetters(db: Database, messages: TenantEvent[]): Promise<void> {
	if (messages.length === 0) return;
	const now = Date.now();
	const statements = messages.map((m) => {
		const attempts = m.relays ?? 1;
		const status = attempts >= OUTBOX_MAX_RELAYS ? "failed" : "pending";
		const { relays: _, ...body } = m;
		const error = `dead-lettered after relay ${attempts}`;
		return sql`INSERT INTO outbox (id, organization_id, body, created_at, attempts, status, last_error, updated_at)
			VALUES (${outboxKey(m)}, ${m.organizationId}, ${JSON.stringify(body)}, ${now}, ${attempts}, ${status}, ${error}, ${now})
			ON CONFLICT (id) DO UPDATE SET attempts = max(outbox.attempts, excluded.attempts),
				status = CASE WHEN max(outbox.attempts, excluded.attempts) >= ${OUTBOX_MAX_RELAYS} THEN 'failed' ELSE 'pending' END,
				last_error = excluded.last_error, updated_at = excluded.updated_at`;
	});
	await runBatch(db.$client, statements);
}

/** Outbox rows for operators (by status, oldest first, keyset on (createdAt, id)), with their event. */
export async function listOutbox(db: Database, q: { status?: "pending" | "failed"; cursor?: string; limit: number }) {
	const rows = await db
		.select()
		.from(outbox)
		.where(and(q.status ? eq(outbox.status, q.status) : undefined, keysetAfter(outbox.createdAt, outbox.id, decodeCursor(q.cursor), "asc")))
		.orderBy(asc(outbox.createdAt), asc(outbox.id))
		.limit(q.limit + 1);
	const { data, nextCursor } = page(rows, q.limit, (r) => ({ k: r.createdAt, id: r.id }));
	return { data: data.map(({ body, ...r }) => ({ ...r, event: JSON.parse(body) as TenantEvent })), nextCursor };
}

/**
 * Re-arms an outbox row (operator replay): pending again with a fresh relay budget, for the cron to
 * send. 404 unknown (or already sent).
 */
export async function replayOutboxRow(db: Database, id: string): Promise<{ organizationId: string | null }> {
	const [row] = await db
		.update(outbox)
		.set({ status: "pending", attempts: 0, lastError: null, updatedAt: Date.now() })
		.where(eq(outbox.id, id))
		.returning({ organizationId: outbox.organizationId });
	if (!row) throw new ApiError("NOT_FOUND", "no outbox row with that id");
	return row;
}
