import { sql } from "drizzle-orm";
import { keysWithinCreator } from "../api-keys";
import { ignore, type Planner, planOf, softDelete, staleRow, syncMemberUser, upsertUser } from "./shared";

/** user.created / user.updated: upsert ordered by the user's updated_at; a deleted user stays deleted. */
const upsert: Planner = (e) => {
	if (!e.id) return ignore(e);
	return planOf(e, {
		statements: [upsertUser(e.data, e.objectTs, e.now), syncMemberUser(e.id)],
		staleCheck: staleRow("users", "id", e.id, e.objectTs, true),
		invalidate: { all: true },
	});
};

/**
 * user.deleted: tombstone ordered by the envelope's time, and the user's personal data scrubbed. The
 * row keeps its id (memberships, orders and audit entries refer to it) but loses email, names and
 * image, and so do the copies on its memberships (which then leave the member list); nothing writes
 * them back (user and membership upserts skip deleted users). The raw payloads
 * of the user's own user.created / user.updated events are reduced to their type and the user id, and so
 * is one recorded after the deletion (a late user.updated: events-log.ts storedPayload). session.* events
 * are never kept with the sign-in context they carry (the user object, the client's IP and user agent).
 * Audit entries name users by id only and are left as they are (their hash chain covers them).
 * Other raw payloads that mention the user (organizationMembership.*) go with the event retention
 * (services/retention.ts).
 */
const remove: Planner = (e) => {
	if (!e.id) return ignore(e);
	return planOf(e, {
		statements: [
			softDelete("users", e.id, e.eventTs, e.now),
			sql`UPDATE users SET email = NULL, first_name = NULL, last_name = NULL, image_url = NULL, updated_at = ${e.now}
				WHERE id = ${e.id}`,
			syncMemberUser(e.id),
			sql`UPDATE events SET payload = json_object('type', type, 'object', 'event', 'redacted', json('true'),
					'data', json_object('id', entity_id, 'object', 'user'))
				WHERE organization_id IS NULL AND type IN ('user.created', 'user.updated') AND entity_id = ${e.id}`,
			// The keys the user made, in every organization, hold nothing any more.
			keysWithinCreator(e.id, e.now),
		],
		invalidate: { all: true },
	});
};

export const userPlanners: Record<string, Planner> = {
	"user.created": upsert,
	"user.updated": upsert,
	"user.deleted": remove,
};
