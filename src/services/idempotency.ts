import { and, eq, lt } from "drizzle-orm";
import type { Database } from "../db/client";
import { idempotencyKeys } from "../db/schema";

/** Stored responses are replayed for 24 hours; an older key may be reused for a new request. */
const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

type IdempotencyRecord = typeof idempotencyKeys.$inferSelect;

interface KeyRef {
	organizationId: string;
	key: string;
}

const byKey = (k: KeyRef) => and(eq(idempotencyKeys.organizationId, k.organizationId), eq(idempotencyKeys.key, k.key));

/**
 * Claims a key in one statement: a new one, or an expired one (free again) taken over. When the
 * claim loses, `held` is the row that holds the key (undefined if it was released meanwhile).
 */
export async function claimIdempotencyKey(
	db: Database,
	k: KeyRef & { userId: string; requestHash: string },
): Promise<{ claimed: true } | { claimed: false; held: IdempotencyRecord | undefined }> {
	const now = Date.now();
	const { organizationId, key, userId, requestHash } = k;
	const claimed = await db
		.insert(idempotencyKeys)
		.values({ organizationId, key, userId, requestHash, state: "pending", createdAt: now })
		.onConflictDoUpdate({
			target: [idempotencyKeys.organizationId, idempotencyKeys.key],
			set: { userId, requestHash, state: "pending", status: null, responseBody: null, createdAt: now },
			setWhere: lt(idempotencyKeys.createdAt, now - IDEMPOTENCY_TTL_MS),
		})
		.returning({ key: idempotencyKeys.key });
	if (claimed.length > 0) return { claimed: true };
	const [held] = await db.select().from(idempotencyKeys).where(byKey(k));
	return { claimed: false, held };
}

/** Stores the response of a claimed key, to be replayed. */
export async function completeIdempotencyKey(db: Database, k: KeyRef, status: number, responseBody: string): Promise<void> {
	await db.update(idempotencyKeys).set({ state: "done", status, responseBody }).where(byKey(k));
}

/** Releases a claimed key (the request failed). */
export async function releaseIdempotencyKey(db: Database, k: KeyRef): Promise<void> {
	await db.delete(idempotencyKeys).where(byKey(k));
}
