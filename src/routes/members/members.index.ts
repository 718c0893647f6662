import type { Context } from "hono";
import type { AppEnv } from "../../env";
import { createdLocation, createRouter } from "../../lib/create-app";
import { requestMeta } from "../../middleware/request-meta";
import { type AuditInput, publishChange } from "../../services/events-bus";
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
});
/** Audit entry for a change Clerk accepted (the webhook sync later adds its own system entry). */
const audit = (c: Context<AppEnv>, input: Omit<AuditInput, "organizationId">) =>
	publishChange(c.env, requestMeta(c), c.get("logger"), { organizationId: orgId(c), ...input });

export const membersRouter = createRouter()
	.openapi(routes.createInvitation, async (c) => {
		const invitation = await inviteMember(c.get("db"), c.env, orgId(c), caller(c), c.req.valid("json"));
		await audit(c, { action: "invitation.created", targetType: "invitation", targetId: invitation.id, after: invitation });
		return c.json(invitation, 201, createdLocation(c, invitation.id));
	})
	.openapi(routes.listInvitations, async (c) => c.json(await listInvitations(c.get("db"), orgId(c), c.req.valid("query")), 200))
	.openapi(routes.revokeInvitation, async (c) => {
		const { invitationId } = c.req.valid("param");
		const { before, after } = await revokeInvitation(c.get("db"), c.env, orgId(c), invitationId, caller(c));
		await audit(c, { action: "invitation.revoked", targetType: "invitation", targetId: invitationId, before, after });
		return c.json(after, 200);
	})
	.openapi(routes.updateMember, async (c) => {
		const { userId } = c.req.valid("param");
		const { before, member } = await changeMemberRole(c.get("db"), c.env, orgId(c), userId, caller(c), c.req.valid("json").role);
		await audit(c, {
			action: "member.role_changed",
			targetType: "membership",
			targetId: userId,
			before: { userId, role: before },
			after: { userId, role: member.role },
		});
		return c.json(member, 200);
	})
	.openapi(routes.removeMember, async (c) => {
		const { userId } = c.req.valid("param");
		const { before } = await removeMember(c.get("db"), c.env, orgId(c), userId);
		await audit(c, { action: "member.removed", targetType: "membership", targetId: userId, before: { userId, role: before } });
		return c.body(null, 204);
	});
