import { sql } from "drizzle-orm";
import { str as s } from "../../lib/payload";
import { systemAudit } from "../events-bus";
import { outboxInsertPerOrganization } from "../outbox";
import { D1_NOW_MS, REVOCATION_HOLD_MS } from "../sessions";
import { ignore, type Planner, planOf } from "./shared";
import { userPlanners } from "./users";

// Session revocation: what services/sessions.ts reads. Rows are written on D1's clock and pruned
// here, on insert, once expired (no cron needed: the tables only grow when revocations arrive).

const pruneSessions = sql`DELETE FROM revoked_sessions WHERE expires_at <= ${D1_NOW_MS}`;
const pruneUsers = sql`DELETE FROM revoked_users WHERE expires_at <= ${D1_NOW_MS}`;

/** session.ended / session.removed / session.revoked: the session's tokens are refused from now on. */
const revokeSession: Planner = (e) => {
	if (!e.id) return ignore(e);
	return planOf(e, {
		statements: [
			sql`INSERT INTO revoked_sessions (sid, user_id, revoked_at, expires_at)
				VALUES (${e.id}, ${s(e.data.user_id)}, ${D1_NOW_MS}, ${D1_NOW_MS} + ${REVOCATION_HOLD_MS})
				ON CONFLICT (sid) DO NOTHING`,
			pruneSessions,
		],
	});
};

/**
 * session.created: nothing is mirrored (recorded ignored), but a user.signed_in audit entry goes to
 * each organization the user is an active member of, as the batch finds them (ids from the svix id:
 * a redelivery is deduplicated).
 */
const signIn: Planner = (e) => {
	const userId = s(e.data.user_id);
	if (!userId) return ignore(e);
	const audit = systemAudit({
		id: `aud_${e.eventId}`,
		organizationId: "", // set per organization
		action: "user.signed_in",
		targetType: "user",
		targetId: userId,
		occurredAt: e.eventTs,
	});
	return planOf(e, {
		ignored: true,
		outbox: [
			outboxInsertPerOrganization(audit, sql`SELECT organization_id FROM memberships WHERE user_id = ${userId} AND deleted_at IS NULL`),
		],
	});
};

const deleteUser = userPlanners["user.deleted"] as Planner;

/**
 * user.deleted: the user's tombstone (users.ts) plus the end of all its sessions: tokens issued at
 * or before the deletion (the envelope's time, Clerk's clock like `iat`) are refused.
 */
const revokeUser: Planner = (e) => {
	const plan = deleteUser(e);
	if (!e.id || plan.ignored || plan.failed) return plan;
	return {
		...plan,
		statements: [
			...plan.statements,
			sql`INSERT INTO revoked_users (user_id, revoked_before, revoked_at, expires_at)
				VALUES (${e.id}, ${e.eventTs}, ${D1_NOW_MS}, ${D1_NOW_MS} + ${REVOCATION_HOLD_MS})
				ON CONFLICT (user_id) DO UPDATE SET revoked_before = max(revoked_users.revoked_before, excluded.revoked_before),
					revoked_at = excluded.revoked_at, expires_at = excluded.expires_at`,
			pruneUsers,
		],
	};
};

/** The session events mirrored (or audited) here, and user.deleted extended to end the user's sessions. */
export const sessionPlanners: Record<string, Planner> = {
	"session.created": signIn,
	"session.ended": revokeSession,
	"session.removed": revokeSession,
	"session.revoked": revokeSession,
	"user.deleted": revokeUser,
};
