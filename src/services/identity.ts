import { and, asc, count, eq, isNull, sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { keysetAfter } from "../db/keyset";
import { invitations, memberships, users } from "../db/schema";
import { decodeCursor, page } from "../lib/cursor";

/** Reads over the organizations, memberships and invitations mirrored from Clerk. */

interface Member {
	id: string;
	userId: string;
	role: string;
	email: string | null;
	firstName: string | null;
	lastName: string | null;
	createdAt: number;
}

/** Active members of an organization (active users only), oldest first, keyset-paginated on (createdAt, id). */
export async function listMembers(
	db: Database,
	orgId: string,
	q: { cursor?: string; limit: number },
): Promise<{ data: Member[]; nextCursor: string | null }> {
	const rows = await db
		.select({
			id: memberships.id,
			userId: memberships.userId,
			role: memberships.role,
			email: users.email,
			firstName: users.firstName,
			lastName: users.lastName,
			createdAt: memberships.createdAt,
		})
		.from(memberships)
		.innerJoin(users, eq(users.id, memberships.userId))
		.where(
			and(
				eq(memberships.organizationId, orgId),
				isNull(memberships.deletedAt),
				isNull(users.deletedAt),
				keysetAfter(memberships.createdAt, memberships.id, decodeCursor(q.cursor), "asc"),
			),
		)
		.orderBy(asc(memberships.createdAt), asc(memberships.id))
		.limit(q.limit + 1);
	return page(rows, q.limit, (r) => ({ k: r.createdAt, id: r.id }));
}

interface OrgAdminData {
	organizationId: string;
	memberCount: number;
	admins: number;
	pendingInvitations: number;
}

/** Member, admin and pending-invitation counts of an organization, in one round trip. */
export async function orgAdminData(db: Database, orgId: string): Promise<OrgAdminData> {
	const [[members], [pending]] = await db.batch([
		db
			.select({
				total: count(),
				admins: sql<number>`coalesce(sum(case when ${memberships.role} = 'org:admin' then 1 else 0 end), 0)`,
			})
			.from(memberships)
			.where(and(eq(memberships.organizationId, orgId), isNull(memberships.deletedAt))),
		db
			.select({ total: count() })
			.from(invitations)
			.where(and(eq(invitations.organizationId, orgId), eq(invitations.status, "pending"))),
	]);
	return {
		organizationId: orgId,
		memberCount: members?.total ?? 0,
		admins: Number(members?.admins ?? 0),
		pendingInvitations: pending?.total ?? 0,
	};
}

/** The organizations a user is an active member of. */
export async function activeOrgIdsOf(db: Database, userId: string): Promise<string[]> {
	const rows = await db
		.select({ organizationId: memberships.organizationId })
		.from(memberships)
		.where(and(eq(memberships.userId, userId), isNull(memberships.deletedAt)));
	return rows.map((r) => r.organizationId);
}
