import type { Context } from "hono";
import type { AppEnv } from "../../env";
import { createdLocation, createRouter } from "../../lib/create-app";
import { withChangeLog } from "../../middleware/change-log";
import {
	type Caller,
	changeMemberRole,
	inviteMember,
	listInvitations,
	removeMember,
	revokeInvitation,
} from "../../services/identity";
import * as routes from "./members.routes";

const orgId = (c: Context<AppEnv>) => c.get("access").organization.id;
const caller = (c: Context<AppEnv>): Caller => ({
	userId: c.get("auth").userId,
	role: c.get("access").role,
	plan: c.get("access").organization.plan,
	permissions: c.get("access").permissions,
});

// A change Clerk accepted is recorded in the mirror with its audit entry in one batch; withChangeLog
// relays the entry once it committed.
export const membersRouter = createRouter()
	.openapi(routes.createInvitation, async (c) => {
		const invitation = await withChangeLog(c, (log) => inviteMember(c.get("db"), c.env, orgId(c), caller(c), c.req.valid("json"), log));
		return c.json(invitation, 201, createdLocation(c, invitation.id));
	})
	.openapi(routes.listInvitations, async (c) => c.json(await listInvitations(c.get("db"), orgId(c), c.req.valid("query")), 200))
	.openapi(routes.revokeInvitation, async (c) => {
		const { invitationId } = c.req.valid("param");
		const { after } = await withChangeLog(c, (log) => revokeInvitation(c.get("db"), c.env, orgId(c), invitationId, caller(c), log));
		return c.json(after, 200);
	})
	.openapi(routes.updateMember, async (c) => {
		const { userId } = c.req.valid("param");
		const { member } = await withChangeLog(c, (log) =>
			changeMemberRole(c.get("db"), c.env, orgId(c), userId, caller(c), c.req.valid("json").role, log),
		);
		return c.json(member, 200);
	})
	.openapi(routes.removeMember, async (c) => {
		const { userId } = c.req.valid("param");
		await withChangeLog(c, (log) => removeMember(c.get("db"), c.env, orgId(c), userId, caller(c), log));
		return c.body(null, 204);
	});
