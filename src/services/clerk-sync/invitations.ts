import { sql } from "drizzle-orm";
import { normalizeRoleKey } from "../../auth/claims";
import { num as n, str as s } from "../../lib/payload";
import { createdAt, ignore, ms, type Planner, planOf, staleRow } from "./shared";

/** organizationInvitation.created / accepted / revoked: the invitation's status, ordered by updated_at. */
const invitation: Planner = (e) => {
	const d = e.data;
	const orgId = s(d.organization_id);
	if (!e.id || !orgId) return ignore(e);
	const status = s(d.status) ?? e.type.split(".")[1] ?? "pending";
	const expiresAt = ms(n(d.expires_at));
	return planOf(e, {
		organizationId: orgId,
		statements: [
			sql`
				INSERT INTO invitations (id, organization_id, email, role, status, expires_at, source_updated_at, created_at, updated_at)
				VALUES (${e.id}, ${orgId}, ${s(d.email_address) ?? ""}, ${normalizeRoleKey(s(d.role) ?? "org:member")}, ${status},
					${expiresAt}, ${e.objectTs}, ${createdAt(d, e.now)}, ${e.now})
				ON CONFLICT (id) DO UPDATE SET status = excluded.status, role = excluded.role,
					expires_at = coalesce(excluded.expires_at, invitations.expires_at),
					source_updated_at = excluded.source_updated_at, updated_at = excluded.updated_at
				WHERE excluded.source_updated_at >= invitations.source_updated_at`,
		],
		staleCheck: staleRow("invitations", "id", e.id, e.objectTs, false),
	});
};

export const invitationPlanners: Record<string, Planner> = {
	"organizationInvitation.created": invitation,
	"organizationInvitation.accepted": invitation,
	"organizationInvitation.revoked": invitation,
};
