import { and, eq, lt, or, type SQL, sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { idempotencyKeys } from "../db/schema";

/** Stored responses are replayed for 24 hours; an older key may be reused for a new request. */
const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/**
 * A claim is held this long. A retry of the same request after it expires takes the key over and runs
 * the work again: where the response is stored in the work's own batch (see storeResponse), an expired
 * pending claim means the work never committed. A request still running when its lease expires loses
 * its claim: its batch then aborts instead of committing the work a second time.
 */
const IDEMPOTENCY_LEASE_MS = 30_000;

type IdempotencyRecord = typeof idempotencyKeys.$inferSelect;

interface KeyRef {
	organizationId: string;
	key: string;
}

/** A key claimed by one request: the token proves the claim is still this request's. */
export interface IdempotencyClaim extends KeyRef {
	token: string;
}

/** What a service needs to store the response of a claimed key in the work's own batch. */
export interface IdempotentCommit<T> {
	claim: IdempotencyClaim;
	status: number;
	/** The response body for the row the work produces (rendered before the batch runs). */
	render: (row: T) => unknown;
}

const byKey = (k: KeyRef) => and(eq(idempotencyKeys.organizationId, k.organizationId), eq(idempotencyKeys.key, k.key));
const held = (c: IdempotencyClaim) => and(byKey(c), eq(idempotencyKeys.claimToken, c.token), eq(idempotencyKeys.state, "pending"));

/**
 * Claims a key in one statement: a new one; an expired one (free again after 24 h) for any request; or,
 * for the same request (same hash: method, path, user and body), one whose claim was never completed and
 * whose lease has run out. When the claim loses, `held` is the row that holds the key (undefined if it
 * was released meanwhile).
 */
export async function claimIdempotencyKey(
	db: Database,
	k: KeyRef & { userId: string; requestHash: string },
): Promise<{ claimed: IdempotencyClaim } | { claimed: false; held: IdempotencyRecord | undefined }> {
	const now = Date.now();
	const { organizationId, key, userId, requestHash } = k;
	const token = crypto.randomUUID();
	const fresh = { userId, requestHash, state: "pending" as const, createdAt: now, leaseUntil: now + IDEMPOTENCY_LEASE_MS, claimToken: token };
	const t = idempotencyKeys;
	const claimed = await db
		.insert(t)
		.values({ organizationId, key, ...fresh })
		.onConflictDoUpdate({
			target: [t.organizationId, t.key],
			set: { ...fresh, status: null, responseBody: null },
			setWhere: or(
				lt(t.createdAt, now - IDEMPOTENCY_TTL_MS),
				and(
					eq(t.state, "pending"),
					eq(t.requestHash, requestHash),
					lt(sql`coalesce(${t.leaseUntil}, ${t.createdAt} + ${IDEMPOTENCY_LEASE_MS})`, now),
				),
			),
		})
		.returning({ key: t.key });
	if (claimed.length > 0) return { claimed: { organizationId, key, token } };
	const [row] = await db.select().from(t).where(byKey(k));
	return { claimed: false, held: row };
}

/**
 * The statement storing a claimed key's response, for the work's own batch: the work and its response
 * commit together or not at all. If the claim is no longer this request's (its lease expired and a retry
 * took the key over, or the key was released), the statement fails (request_hash NOT NULL) and aborts
 * the whole batch: the work never commits twice. With `when`, the response is only stored while that
 * condition holds (a body computed by SQL from rows the batch changed).
 * Use it in db.batch as is, or in runBatch with .getSQL().
 */
export function storeResponse(db: Database, claim: IdempotencyClaim, status: number, body: string | SQL, when?: SQL) {
	const t = idempotencyKeys;
	const ownHash = sql`(SELECT ${t.requestHash} FROM ${t} WHERE ${held(claim)})`;
	return db
		.insert(t)
		.values({
			organizationId: claim.organizationId,
			key: claim.key,
			userId: "",
			requestHash: ownHash,
			state: "done",
			status,
			responseBody: body,
			createdAt: 0,
		})
		.onConflictDoUpdate({
			target: [t.organizationId, t.key],
			set: { state: "done", status, responseBody: body, leaseUntil: null },
			...(when ? { setWhere: when } : {}),
		});
}

/** Stores the response of a claimed key, to be replayed (a no-op if the work's batch already stored it). */
export async function completeIdempotencyKey(db: Database, claim: IdempotencyClaim, status: number, responseBody: string): Promise<void> {
	await db.update(idempotencyKeys).set({ state: "done", status, responseBody, leaseUntil: null }).where(held(claim));
}

/** Releases a claimed key (the request failed) unless a response was stored for it. */
export async function releaseIdempotencyKey(db: Database, claim: IdempotencyClaim): Promise<void> {
	await db.delete(idempotencyKeys).where(held(claim));
}
