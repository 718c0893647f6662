import { and, asc, desc, eq, gt, gte, isNull, lt, type SQL } from "drizzle-orm";
import { runBatch } from "../db/batch";
import type { Database } from "../db/client";
import { insertRows } from "../db/insert";
import { auditCheckpoints, auditLogs } from "../db/schema";
import { ApiError } from "../errors";
import { decodeCursor, encodeCursor, page as pageOf } from "../lib/cursor";
import { sha256Hex } from "../lib/crypto";
import { newId } from "../lib/ids";
import type { AuditMessage } from "../queue/tenant-events";
import type { PageQuery } from "./keyset-page";

const GENESIS_HASH = "0".repeat(64);

type Row = typeof auditLogs.$inferSelect;
type Hashed = Omit<Row, "hash">;

/** Canonical text of an entry: fixed field order, so the hash is reproducible from the stored row. */
function canonical(e: Hashed): string {
	return JSON.stringify([
		e.organizationId,
		e.seq,
		e.eventId,
		e.actorType,
		e.actorId,
		e.action,
		e.targetType,
		e.targetId,
		e.before,
		e.after,
		e.ip,
		e.country,
		e.userAgent,
		e.requestId,
		e.occurredAt,
		e.prevHash,
	]);
}

const entryHash = (e: Hashed) => sha256Hex(canonical(e));

const json = (v: unknown) => (v === undefined || v === null ? null : JSON.stringify(v));

// appendAudit's two reads, as constant text (a tenant write runs them on every change: no query building).
const HEAD_SQL = "SELECT seq, hash FROM audit_logs WHERE organization_id = ? ORDER BY seq DESC LIMIT 1";
const existingEventsSql = (n: number) =>
	`SELECT event_id AS eventId FROM audit_logs WHERE organization_id = ? AND event_id IN (${Array.from({ length: n }, () => "?").join(", ")})`;

/**
 * Appends audit messages to their organizations' hash chains. Per organization: drop ids already
 * written, read the chain head, link the new entries in occurrence order, insert them in one batch.
 * `(organization_id, seq)` is unique, so a concurrent writer makes the batch fail instead of forking
 * the chain; the caller retries those messages. Returns the organizations that failed, each with its error.
 */
export async function appendAudit(db: Database, messages: AuditMessage[]): Promise<Map<string, unknown>> {
	const byOrg = new Map<string, AuditMessage[]>();
	for (const m of messages) byOrg.set(m.organizationId, [...(byOrg.get(m.organizationId) ?? []), m]);
	const failed = new Map<string, unknown>();
	for (const [orgId, list] of byOrg) {
		try {
			const unique = [...new Map(list.map((m) => [m.id, m])).values()];
			const existing = new Set<string>();
			for (let i = 0; i < unique.length; i += 90) {
				const ids = unique.slice(i, i + 90).map((m) => m.id);
				const { results } = await db.$client
					.prepare(existingEventsSql(ids.length))
					.bind(orgId, ...ids)
					.all<{ eventId: string }>();
				for (const r of results) existing.add(r.eventId);
			}
			const fresh = unique
				.filter((m) => !existing.has(m.id))
				.sort((a, b) => a.occurredAt - b.occurredAt || a.id.localeCompare(b.id));
			if (fresh.length === 0) continue;
			const head = await db.$client.prepare(HEAD_SQL).bind(orgId).first<{ seq: number; hash: string }>();
			let seq = head?.seq ?? 0;
			let prevHash = head?.hash ?? GENESIS_HASH;
			const rows: Row[] = [];
			for (const m of fresh) {
				seq += 1;
				const entry: Hashed = {
					id: newId("log"),
					organizationId: orgId,
					seq,
					eventId: m.id,
					actorType: m.actorType,
					actorId: m.actorId,
					action: m.action,
					targetType: m.targetType,
					targetId: m.targetId,
					before: json(m.before),
					after: json(m.after),
					ip: m.context.ip ?? null,
					country: m.context.country ?? null,
					userAgent: m.context.userAgent ?? null,
					requestId: m.context.requestId ?? null,
					occurredAt: m.occurredAt,
					prevHash,
				};
				const hash = await entryHash(entry);
				rows.push({ ...entry, hash });
				prevHash = hash;
			}
			// 100 bound parameters per statement: 18 columns → 5 rows per INSERT.
			const inserts = [];
			for (let i = 0; i < rows.length; i += 5) inserts.push(insertRows(auditLogs, rows.slice(i, i + 5)));
			await runBatch(db.$client, inserts);
		} catch (err) {
			failed.set(orgId, err);
		}
	}
	return failed;
}

/** Entries re-hashed per verification call (bounded work at any chain length), read this many per query. */
export const VERIFY_MAX_ENTRIES = 1_000;
const VERIFY_CHUNK = 250;

type BreakReason = "hash mismatch" | "broken link" | "sequence gap";

interface ChainReport {
	intact: boolean;
	/** Entries verified by this call. */
	entries: number;
	/** The chain's head as stored (null when there are no entries). */
	headSeq: number | null;
	headHash: string | null;
	/** The last seq known intact after this call (0: nothing verified yet). */
	checkedThrough: number;
	/** Pass as ?cursor= to continue; null once the head was reached (or a break was found). */
	nextCursor: string | null;
	/** First entry that does not verify, and why. */
	brokenAt?: { seq: number; reason: BreakReason };
}

/** A position in the chain: an entry's seq and its hash (seq 0: genesis). */
interface Position {
	seq: number;
	hash: string;
}

const GENESIS: Position = { seq: 0, hash: GENESIS_HASH };

const encodePosition = (p: Position) => encodeCursor({ k: p.seq, id: p.hash });

/** A cursor whose entry no longer carries the hash it recorded: nothing to continue from. */
const staleCursor = () =>
	new ApiError("VALIDATION_FAILED", "cursor does not match the chain: verify again without it", {
		errors: [{ path: "cursor", message: "its entry does not carry the hash it recorded" }],
	});

function decodePosition(raw: string): Position {
	const c = decodeCursor(raw);
	if (!c || !Number.isSafeInteger(c.k) || c.k < 0 || !/^[0-9a-f]{64}$/.test(c.id)) {
		throw new ApiError("VALIDATION_FAILED", "cursor is not valid", {
			errors: [{ path: "cursor", message: "not a cursor returned by this API" }],
		});
	}
	return { seq: c.k, hash: c.id };
}

/**
 * Verifies the organization's hash chain a bounded slice at a time: at most VERIFY_MAX_ENTRIES entries
 * read per call (in VERIFY_CHUNK reads), so a call costs at most 7 D1 statements (6 round trips) at any
 * chain length.
 *
 * Where it starts: `cursor` (a previous call's nextCursor), else genesis when `full`, else the
 * organization's checkpoint (the last entry verified intact; genesis when there is none). The start
 * entry must still carry the hash the cursor or checkpoint recorded; each following entry must link to
 * the previous hash, carry the next seq and hash to its stored hash.
 *
 * A break ends the call (nextCursor null). The checkpoint moves forward only over entries verified
 * intact from a trusted anchor (genesis or the checkpoint itself; a cursor is the client's and anchors
 * nothing until the run reaches the checkpoint's seq with the checkpoint's hash). A cursor whose entry
 * no longer carries its hash is refused (400: start over without it), so a made-up cursor reports nothing.
 * Later calls keep reporting a break found at or before the checkpoint:
 * - entries that contradict the checkpoint (its entry now carries another hash: rewritten with
 *   recomputed hashes, self-consistent) leave the checkpoint as it is, the evidence: every call from it
 *   fails at its start, and every run over its seq (from genesis or a cursor) fails there;
 * - an entry that does not hash to its stored hash, a broken link or a gap moves the checkpoint back to the
 *   last entry verified intact from an anchor (or removes it): the next call reaches the break again.
 * Tampering with entries before the checkpoint is found by a run from genesis: `?full=1`, then the
 * nextCursor chain.
 */
export async function verifyChain(
	db: Database,
	orgId: string,
	from: { cursor?: string; full?: boolean } = {},
): Promise<ChainReport> {
	const [checkpoints, heads] = await db.batch([
		db.select().from(auditCheckpoints).where(eq(auditCheckpoints.organizationId, orgId)),
		db
			.select({ seq: auditLogs.seq, hash: auditLogs.hash })
			.from(auditLogs)
			.where(eq(auditLogs.organizationId, orgId))
			.orderBy(desc(auditLogs.seq))
			.limit(1),
	]);
	const checkpoint: Position | null = checkpoints[0] ? { seq: checkpoints[0].seq, hash: checkpoints[0].hash } : null;
	const head = heads[0] ?? null;
	const start = from.cursor ? decodePosition(from.cursor) : from.full ? GENESIS : (checkpoint ?? GENESIS);
	const isCheckpoint = (p: Position) => checkpoint !== null && p.seq === checkpoint.seq && p.hash === checkpoint.hash;
	// From here on, every verified entry is anchored to genesis or to the checkpoint.
	let anchored = start.seq === 0 ? start.hash === GENESIS_HASH : isCheckpoint(start);

	let last: Position = start;
	let entries = 0;
	let brokenAt: ChainReport["brokenAt"];
	// The break is the checkpoint's own entry carrying another hash: the checkpoint is the evidence and stays.
	let againstCheckpoint = false;
	// The start entry itself is read again (seq >= start) to check it still carries the recorded hash.
	let startChecked = start.seq === 0;
	let after = startChecked ? 0 : start.seq - 1;
	let budget = VERIFY_MAX_ENTRIES; // rows read, the start entry included
	scan: while (budget > 0) {
		const want = Math.min(VERIFY_CHUNK, budget);
		const page = await db
			.select()
			.from(auditLogs)
			.where(and(eq(auditLogs.organizationId, orgId), gt(auditLogs.seq, after)))
			.orderBy(asc(auditLogs.seq))
			.limit(want);
		budget -= page.length;
		if (page.length === 0 && !startChecked) {
			// Gone, or never there.
			if (from.cursor) throw staleCursor();
			brokenAt = { seq: start.seq, reason: "sequence gap" };
			againstCheckpoint = true;
		}
		for (const row of page) {
			after = row.seq;
			const { hash, ...rest } = row;
			if (!startChecked) {
				startChecked = true;
				if (row.seq !== start.seq || hash !== start.hash) {
					if (from.cursor) throw staleCursor();
					brokenAt = { seq: start.seq, reason: row.seq !== start.seq ? "sequence gap" : "hash mismatch" };
					againstCheckpoint = true;
					break scan;
				}
				continue;
			}
			const reason: BreakReason | null =
				row.seq !== last.seq + 1
					? "sequence gap"
					: row.prevHash !== last.hash
						? "broken link"
						: (await entryHash(rest)) !== hash
							? "hash mismatch"
							: checkpoint && row.seq === checkpoint.seq && hash !== checkpoint.hash
								? "hash mismatch" // consistent with its neighbours, yet not what was verified before: rewritten since
								: null;
			if (reason) {
				brokenAt = { seq: last.seq + 1, reason };
				againstCheckpoint = checkpoint !== null && row.seq === checkpoint.seq && reason === "hash mismatch" && hash !== checkpoint.hash;
				break scan;
			}
			last = { seq: row.seq, hash };
			entries += 1;
			if (isCheckpoint(last)) anchored = true;
		}
		if (page.length < want) break;
	}

	const now = Date.now();
	if (brokenAt && checkpoint && brokenAt.seq <= checkpoint.seq && !againstCheckpoint) {
		// The checkpoint no longer holds: back to the last entry verified from an anchor, or gone.
		const back = anchored && last.seq > 0 && last.seq < checkpoint.seq ? last : null;
		await (back
			? db
					.update(auditCheckpoints)
					.set({ seq: back.seq, hash: back.hash, verifiedAt: now })
					.where(eq(auditCheckpoints.organizationId, orgId))
			: db.delete(auditCheckpoints).where(eq(auditCheckpoints.organizationId, orgId)));
	} else if (!againstCheckpoint && anchored && last.seq > (checkpoint?.seq ?? 0)) {
		// Forward over what verified intact (up to the entry before a break found after the checkpoint).
		await db
			.insert(auditCheckpoints)
			.values({ organizationId: orgId, seq: last.seq, hash: last.hash, verifiedAt: now })
			.onConflictDoUpdate({ target: auditCheckpoints.organizationId, set: { seq: last.seq, hash: last.hash, verifiedAt: now } });
	}
	const reachedHead = head === null || last.seq >= head.seq;
	return {
		intact: !brokenAt,
		entries,
		headSeq: head?.seq ?? null,
		headHash: head?.hash ?? null,
		checkedThrough: last.seq,
		nextCursor: brokenAt || reachedHead ? null : encodePosition(last),
		...(brokenAt ? { brokenAt } : {}),
	};
}

interface AuditFilter extends PageQuery {
	/** A user id, or "system" for entries written by the system. */
	actor?: string;
	action?: string;
	/** occurredAt >= from */
	from?: number;
	/** occurredAt < to */
	to?: number;
}

/**
 * The organization's audit entries, newest first (by seq), one keyset page. seq is unique per
 * organization (audit_logs_org_seq_uq), so it is its own tie-breaker: the page is `seq < cursor` in
 * seq order, an index range on (organization_id, seq) and on the action and actor indexes, which end
 * in seq. (Ordering by (seq, id) instead could not use those two, which lack id: SQLite walked the
 * seq index and filtered, reading page / selectivity rows.) The cursor stays (seq, id).
 */
export async function listAuditLogs(db: Database, orgId: string, q: AuditFilter) {
	const actor: SQL | undefined =
		q.actor === undefined ? undefined : q.actor === "system" ? isNull(auditLogs.actorId) : eq(auditLogs.actorId, q.actor);
	const after = decodeCursor(q.cursor);
	const rows = await db
		.select()
		.from(auditLogs)
		.where(
			and(
				eq(auditLogs.organizationId, orgId),
				actor,
				q.action ? eq(auditLogs.action, q.action) : undefined,
				q.from !== undefined ? gte(auditLogs.occurredAt, q.from) : undefined,
				q.to !== undefined ? lt(auditLogs.occurredAt, q.to) : undefined,
				after ? lt(auditLogs.seq, after.k) : undefined,
			),
		)
		.orderBy(desc(auditLogs.seq))
		.limit(q.limit + 1);
	return pageOf(rows, q.limit, (r) => ({ k: r.seq, id: r.id }));
}
