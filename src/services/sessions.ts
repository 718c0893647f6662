import { type SQL, sql } from "drizzle-orm";
import type { AuthContext } from "../auth/claims";
import { CLOCK_SKEW_SECONDS, MAX_TOKEN_LIFETIME_SECONDS } from "../auth/verifier";
import { runBatch } from "../db/batch";
import type { Database } from "../db/client";

// Session revocation (issue 12). Clerk's session.ended/removed/revoked and user.deleted webhooks write
// revoked_sessions / revoked_users rows (services/clerk-sync/sessions.ts); every isolate keeps the
// set of revocations in memory and catches up with one D1 query `WHERE revoked_at > last seen`:
//
// - A request never decides on a list read more than REVOCATION_MAX_STALENESS_MS (5 s) ago: past
//   that age it awaits a refresh first. So a revocation is enforced in every isolate at most 5 s
//   after its row is written (plus the queue's delivery delay).
// - From REFRESH_AHEAD_MS (3 s) on, the first request refreshes in the background (waitUntil) and
//   decides on the list it has: under steady traffic no request waits for D1, and each isolate
//   runs about one small query per 3 s, whatever its request rate.
// - No refresh is shared as a promise between requests (a Worker request cannot await another's
//   I/O); a refresh only updates this module's maps when it completes.
// - revoked_at is D1's own clock (one writer, one clock), and each refresh re-reads FEED_OVERLAP_MS
//   before the newest row seen, so a row is not missed if clocks step back a little.
// - Rows are held until no token issued before the revocation can still be valid: the verifier
//   refuses tokens living longer than MAX_TOKEN_LIFETIME_SECONDS. Expired rows are pruned as new
//   revocations are written, and dropped from the isolate's maps as it refreshes.

/** D1's clock in ms: revocation rows are written, compared and pruned on this one clock. */
export const D1_NOW_MS = sql`CAST(unixepoch('subsec') * 1000 AS INTEGER)`;
/** How long a revocation is held: until every token issued before it has expired. */
export const REVOCATION_HOLD_MS = (MAX_TOKEN_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS) * 1000;
/** A request never decides on a revocation list read longer ago than this. */
export const REVOCATION_MAX_STALENESS_MS = 5_000;
/** From this age on, a request refreshes the list in the background and uses it as it is. */
const REFRESH_AHEAD_MS = 3_000;
/** Each refresh re-reads rows this much older than the newest seen. */
const FEED_OVERLAP_MS = 60_000;

/** Revocation rows written after `since` (D1 clock, ms) and not yet expired. */
export interface RevocationRows {
	sessions: { sid: string; revokedAt: number; expiresAt: number }[];
	users: { userId: string; revokedBefore: number; revokedAt: number; expiresAt: number }[];
}

/** Reads revocation rows; one D1 round trip in production, a stub in unit tests. */
export type RevocationSource = (since: number) => Promise<RevocationRows>;

/** The revocations one isolate knows of, refreshed as the module comment describes. */
export class RevocationList {
	/** sid -> expiresAt (ms). */
	private readonly sids = new Map<string, number>();
	/** userId -> tokens issued at or before `before` (ms) are refused, until expiresAt. */
	private readonly users = new Map<string, { before: number; expiresAt: number }>();
	/** Local clock: when the read behind the current state started. */
	private asOf = Number.NEGATIVE_INFINITY;
	/** D1 clock: the newest revoked_at seen. */
	private newest = 0;
	private backgroundSince: number | null = null;

	/**
	 * Whether the session behind `auth` is revoked. `background` hands a refresh to the request's
	 * waitUntil; without it, a refresh due ahead of time waits until the list is stale.
	 */
	async isRevoked(
		read: RevocationSource,
		auth: Pick<AuthContext, "userId" | "sessionId" | "issuedAt">,
		now = Date.now(),
		background?: (work: Promise<unknown>) => void,
	): Promise<boolean> {
		const age = now - this.asOf;
		// A clock that went back (age < 0) cannot vouch for the list either.
		if (age < 0 || age >= REVOCATION_MAX_STALENESS_MS) {
			await this.refresh(read, now);
		} else if (age >= REFRESH_AHEAD_MS && background && !this.backgroundRunning(now)) {
			this.backgroundSince = now;
			const work = this.refresh(read, now)
				// A failed background refresh is retried by the request that finds the list stale.
				.catch(() => undefined)
				.finally(() => {
					this.backgroundSince = null;
				});
			try {
				background(work);
			} catch {
				// No execution context to extend (a direct app.request): the refresh still runs.
			}
		}
		return this.holds(auth);
	}

	private backgroundRunning(now: number): boolean {
		return this.backgroundSince !== null && now - this.backgroundSince < REVOCATION_MAX_STALENESS_MS;
	}

	private async refresh(read: RevocationSource, startedAt: number): Promise<void> {
		const rows = await read(this.newest - FEED_OVERLAP_MS);
		for (const r of rows.sessions) {
			this.sids.set(r.sid, r.expiresAt);
			this.newest = Math.max(this.newest, r.revokedAt);
		}
		for (const r of rows.users) {
			const before = Math.max(r.revokedBefore, this.users.get(r.userId)?.before ?? 0);
			this.users.set(r.userId, { before, expiresAt: r.expiresAt });
			this.newest = Math.max(this.newest, r.revokedAt);
		}
		const now = Date.now();
		for (const [sid, expiresAt] of this.sids) if (expiresAt <= now) this.sids.delete(sid);
		for (const [userId, u] of this.users) if (u.expiresAt <= now) this.users.delete(userId);
		if (startedAt > this.asOf || this.asOf > now) this.asOf = startedAt;
	}

	private holds(auth: Pick<AuthContext, "userId" | "sessionId" | "issuedAt">): boolean {
		if (auth.sessionId !== null && this.sids.has(auth.sessionId)) return true;
		const user = this.users.get(auth.userId);
		// A token without iat cannot show it was issued after the user's revocation.
		return user !== undefined && (auth.issuedAt === undefined || auth.issuedAt * 1000 <= user.before);
	}
}

function readRevocations(db: Database): RevocationSource {
	return async (since) => {
		const queries: SQL[] = [
			sql`SELECT sid, revoked_at AS revokedAt, expires_at AS expiresAt FROM revoked_sessions
				WHERE revoked_at > ${since} AND expires_at > ${D1_NOW_MS}`,
			sql`SELECT user_id AS userId, revoked_before AS revokedBefore, revoked_at AS revokedAt, expires_at AS expiresAt
				FROM revoked_users WHERE revoked_at > ${since} AND expires_at > ${D1_NOW_MS}`,
		];
		const [sessions, users] = await runBatch(db.$client, queries);
		return {
			sessions: (sessions?.results ?? []) as unknown as RevocationRows["sessions"],
			users: (users?.results ?? []) as unknown as RevocationRows["users"],
		};
	};
}

// This isolate's revocation list (module scope): it holds only revocations, the same for every
// request, and is refreshed through each request's own D1 binding.
const isolateList = new RevocationList();

/**
 * Whether the caller's session was ended in Clerk (its sid, or all sessions of its user).
 * @example if (await sessionRevoked(db, auth, (p) => c.executionCtx.waitUntil(p))) throw new TokenError("session revoked");
 */
export function sessionRevoked(
	db: Database,
	auth: Pick<AuthContext, "userId" | "sessionId" | "issuedAt">,
	background?: (work: Promise<unknown>) => void,
): Promise<boolean> {
	return isolateList.isRevoked(readRevocations(db), auth, Date.now(), background);
}
