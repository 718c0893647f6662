import { and, asc, eq, gt, gte, inArray, isNull, lt, type SQL, sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { auditLogs } from "../db/schema";
import { sha256Hex } from "../lib/crypto";
import { newId } from "../lib/ids";
import type { AuditMessage } from "../queue/tenant-events";
import { keysetPage, type PageQuery } from "./keyset-page";

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

/**
 * Appends audit messages to their organizations' hash chains. Per organization: drop ids already
 * written, read the chain head, link the new entries in occurrence order, insert them in one batch.
 * `(organization_id, seq)` is unique, so a concurrent writer makes the batch fail instead of forking
 * the chain; the caller retries those messages. Returns the organization ids that failed.
 */
export async function appendAudit(db: Database, messages: AuditMessage[]): Promise<Set<string>> {
	const byOrg = new Map<string, AuditMessage[]>();
	for (const m of messages) byOrg.set(m.organizationId, [...(byOrg.get(m.organizationId) ?? []), m]);
	const failed = new Set<string>();
	for (const [orgId, list] of byOrg) {
		try {
			const unique = [...new Map(list.map((m) => [m.id, m])).values()];
			const existing = new Set<string>();
			for (let i = 0; i < unique.length; i += 90) {
				const rows = await db
					.select({ eventId: auditLogs.eventId })
					.from(auditLogs)
					.where(
						and(
							eq(auditLogs.organizationId, orgId),
							inArray(
								auditLogs.eventId,
								unique.slice(i, i + 90).map((m) => m.id),
							),
						),
					);
				for (const r of rows) existing.add(r.eventId);
			}
			const fresh = unique
				.filter((m) => !existing.has(m.id))
				.sort((a, b) => a.occurredAt - b.occurredAt || a.id.localeCompare(b.id));
			if (fresh.length === 0) continue;
			const [head] = await db
				.select({ seq: auditLogs.seq, hash: auditLogs.hash })
				.from(auditLogs)
				.where(eq(auditLogs.organizationId, orgId))
				.orderBy(sql`${auditLogs.seq} DESC`)
				.limit(1);
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
			// 100 bound parameters per statement: 17 columns → 5 rows per INSERT.
			const inserts = [];
			for (let i = 0; i < rows.length; i += 5) inserts.push(db.insert(auditLogs).values(rows.slice(i, i + 5)));
			await db.batch(inserts as [(typeof inserts)[number], ...(typeof inserts)[number][]]);
		} catch {
			failed.add(orgId);
		}
	}
	return failed;
}

interface ChainReport {
	intact: boolean;
	entries: number;
	headSeq: number | null;
	headHash: string | null;
	/** First entry that does not verify, and why. */
	brokenAt?: { seq: number; reason: "hash mismatch" | "broken link" | "sequence gap" };
}

/** Recomputes every hash of the organization's chain, in pages, and checks every link. */
export async function verifyChain(db: Database, orgId: string): Promise<ChainReport> {
	let prevHash = GENESIS_HASH;
	let expectSeq = 1;
	let entries = 0;
	let lastSeq = 0;
	for (;;) {
		const page = await db
			.select()
			.from(auditLogs)
			.where(and(eq(auditLogs.organizationId, orgId), gt(auditLogs.seq, lastSeq)))
			.orderBy(asc(auditLogs.seq))
			.limit(500);
		for (const row of page) {
			const { hash, ...rest } = row;
			const broken = (reason: NonNullable<ChainReport["brokenAt"]>["reason"]): ChainReport => ({
				intact: false,
				entries,
				headSeq: lastSeq || null,
				headHash: entries ? prevHash : null,
				brokenAt: { seq: row.seq, reason },
			});
			if (row.seq !== expectSeq) return broken("sequence gap");
			if (row.prevHash !== prevHash) return broken("broken link");
			if ((await entryHash(rest)) !== hash) return broken("hash mismatch");
			prevHash = hash;
			expectSeq += 1;
			entries += 1;
			lastSeq = row.seq;
		}
		if (page.length < 500) break;
	}
	return { intact: true, entries, headSeq: entries ? lastSeq : null, headHash: entries ? prevHash : null };
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

/** The organization's audit entries, newest first (by seq), one keyset page. */
export function listAuditLogs(db: Database, orgId: string, q: AuditFilter) {
	const actor: SQL | undefined =
		q.actor === undefined ? undefined : q.actor === "system" ? isNull(auditLogs.actorId) : eq(auditLogs.actorId, q.actor);
	return keysetPage(
		db,
		auditLogs,
		"seq",
		"desc",
		and(
			eq(auditLogs.organizationId, orgId),
			actor,
			q.action ? eq(auditLogs.action, q.action) : undefined,
			q.from !== undefined ? gte(auditLogs.occurredAt, q.from) : undefined,
			q.to !== undefined ? lt(auditLogs.occurredAt, q.to) : undefined,
		),
		q,
	);
}
