import { type SQL, sql } from "drizzle-orm";
import { normalizeRoleKey } from "../../auth/claims";
import { type Data, num as n, obj, str as s } from "../../lib/payload";
import { keysWithinCreator } from "../api-keys";
import { systemAudit, tenantEvent } from "../events-bus";
import { createdAt, ignore, ms, type Planner, planOf, syncMemberUser, upsertOrg } from "./shared";

/**
 * The email in public_user_data: its `identifier` is whatever the user signs in with (an email address, a
 * phone number or a username), so it counts only when it looks like an email address.
 */
export function identifierEmail(user: Data): string | null {
	const id = s(user.identifier);
	return id !== null && /^[^\s@]+@[^\s@]+$/.test(id) ? id : null;
}

/** Placeholders for a membership's user/organization; filled in (not overwritten) until the real event. */
function placeholders(orgId: string, org: Data, userId: string, user: Data, now: number): SQL[] {
	const orgTs = ms(n(org.updated_at));
	return [
		orgTs !== null && s(org.id) === orgId
			? upsertOrg(org, orgTs, now)
			: sql`INSERT INTO organizations (id, source_updated_at, created_at, updated_at) VALUES (${orgId}, 0, ${now}, ${now})
				ON CONFLICT (id) DO NOTHING`,
		sql`
			INSERT INTO users (id, email, first_name, last_name, image_url, source_updated_at, created_at, updated_at)
			VALUES (${userId}, ${identifierEmail(user)}, ${s(user.first_name)}, ${s(user.last_name)}, ${s(user.image_url)}, 0, ${now}, ${now})
			ON CONFLICT (id) DO UPDATE SET email = coalesce(users.email, excluded.email),
				first_name = coalesce(users.first_name, excluded.first_name), last_name = coalesce(users.last_name, excluded.last_name),
				image_url = coalesce(users.image_url, excluded.image_url)
			WHERE users.source_updated_at = 0 AND users.deleted_at IS NULL`,
	];
}

/**
 * organizationMembership.created / updated / deleted: one row per (organization, user), placeholders
 * for a user or organization not seen yet, plus an audit entry and a tenant webhook event. The row
 * carries its user's email and names as the users row has them: public_user_data fills in a user not
 * seen yet (the placeholder), but never overrides the user's own user.* events, which are ordered.
 */
const membership: Planner = (e) => {
	const d = e.data;
	const org = obj(d.organization);
	const user = obj(d.public_user_data);
	const orgId = s(org.id) ?? s(d.organization_id);
	const userId = s(user.user_id) ?? s(d.user_id);
	const role = s(d.role);
	if (!e.id || !orgId || !userId || !role) return ignore(e);
	const id = e.id;
	const deleted = e.type === "organizationMembership.deleted";
	// A deletion is ordered by when it happened (the envelope), not the object's last update.
	const ts = deleted ? Math.max(e.eventTs, e.objectTs) : e.objectTs;
	const action = `membership.${e.type.split(".")[1]}`;
	const data = { organizationId: orgId, membershipId: id, userId, role: normalizeRoleKey(role) };
	return planOf(e, {
		organizationId: orgId,
		statements: [
			...placeholders(orgId, org, userId, user, e.now),
			sql`
				INSERT INTO memberships (id, organization_id, user_id, role, source_updated_at, created_at, updated_at, deleted_at)
				VALUES (${id}, ${orgId}, ${userId}, ${normalizeRoleKey(role)}, ${ts}, ${createdAt(d, e.now)}, ${e.now},
					${deleted ? ts : null})
				ON CONFLICT (organization_id, user_id) DO UPDATE SET id = excluded.id, role = excluded.role,
					source_updated_at = excluded.source_updated_at, created_at = excluded.created_at,
					updated_at = excluded.updated_at, deleted_at = excluded.deleted_at
				WHERE excluded.source_updated_at > memberships.source_updated_at
					OR (excluded.source_updated_at = memberships.source_updated_at AND memberships.deleted_at IS NULL)`,
			// The user's fields as its users row has them (the placeholder above may have just filled them in).
			syncMemberUser(userId),
			// The keys the member made hold no more than the member now does (none once the membership ended).
			keysWithinCreator(userId, e.now, orgId),
		],
		staleCheck: sql`(SELECT CASE WHEN source_updated_at > ${ts} OR (source_updated_at = ${ts}
			AND (deleted_at IS NULL) <> ${deleted ? 0 : 1}) THEN 1 ELSE 0 END
			FROM memberships WHERE organization_id = ${orgId} AND user_id = ${userId})`,
		invalidate: { orgId, userId },
		events: [
			systemAudit({
				id: `aud_${e.eventId}`,
				organizationId: orgId,
				action,
				targetType: "membership",
				targetId: id,
				after: data,
				occurredAt: e.eventTs,
			}),
			tenantEvent(orgId, action, data, `evt_${e.eventId}`),
		],
	});
};

export const membershipPlanners: Record<string, Planner> = {
	"organizationMembership.created": membership,
	"organizationMembership.updated": membership,
	"organizationMembership.deleted": membership,
};
