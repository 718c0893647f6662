import { and, count, desc, eq, isNull, lt, or, sql } from "drizzle-orm";
import { createRouter } from "../../lib/create-app";
import { events, invitations, memberships, users } from "../../db/schema";
import { decodeCursor, page } from "../../lib/cursor";
import * as routes from "./orgs.routes";

export const orgsRouter = createRouter()
	.openapi(routes.getOrg, (c) => {
		const { organization, role } = c.get("access");
		return c.json({ ...organization, role }, 200);
	})
	.openapi(routes.listMembers, async (c) => {
		const { orgId } = c.req.valid("param");
		const { cursor, limit } = c.req.valid("query");
		const after = decodeCursor(cursor);
		const rows = await c
			.get("db")
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
					after
						? or(
								sql`${memberships.createdAt} > ${after.k}`,
								and(eq(memberships.createdAt, after.k), sql`${memberships.id} > ${after.id}`),
							)
						: undefined,
				),
			)
			.orderBy(memberships.createdAt, memberships.id)
			.limit(limit + 1);
		return c.json(
			page(rows, limit, (r) => ({ k: r.createdAt, id: r.id })),
			200,
		);
	})
	.openapi(routes.adminData, async (c) => {
		const { orgId } = c.req.valid("param");
		const db = c.get("db");
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
		return c.json(
			{
				organizationId: orgId,
				memberCount: members?.total ?? 0,
				admins: Number(members?.admins ?? 0),
				pendingInvitations: pending?.total ?? 0,
			},
			200,
		);
	})
	.openapi(routes.listEvents, async (c) => {
		const { orgId } = c.req.valid("param");
		const { cursor, limit, type } = c.req.valid("query");
		const before = decodeCursor(cursor);
		const rows = await c
			.get("db")
			.select({
				svixId: events.svixId,
				type: events.type,
				entityId: events.entityId,
				receivedAt: events.receivedAt,
				processedAt: events.processedAt,
				outcome: events.outcome,
			})
			.from(events)
			.where(
				and(
					eq(events.organizationId, orgId),
					type ? eq(events.type, type) : undefined,
					before
						? or(lt(events.receivedAt, before.k), and(eq(events.receivedAt, before.k), lt(events.svixId, before.id)))
						: undefined,
				),
			)
			.orderBy(desc(events.receivedAt), desc(events.svixId))
			.limit(limit + 1);
		return c.json(
			page(rows, limit, (r) => ({ k: r.receivedAt, id: r.svixId })),
			200,
		);
	});
