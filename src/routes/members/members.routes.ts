import { createRoute, z } from "@hono/zod-openapi";
import { requirePermission } from "../../middleware/authorize";
import { tenantMiddleware } from "../../middleware/tenant";
import { CursorQuery, jsonContent, OrgIdParam, orgErrors, problem } from "../../openapi";
import { MemberSchema } from "../orgs/orgs.routes";

// Member and invitation management, made in Clerk through its Backend API (org:members:manage).

export const InvitationSchema = z
	.object({
		id: z.string().openapi({ example: "orginv_2abc" }),
		emailAddress: z.string(),
		role: z.string().openapi({ example: "org:member" }),
		status: z.string().openapi({ description: OPENAPI_TEXT ? "pending, accepted, revoked or expired" : undefined }),
		createdAt: z.number().int(),
		updatedAt: z.number().int(),
	})
	.openapi("Invitation");

const InvitationPage = z
	.object({ data: z.array(InvitationSchema), nextCursor: z.string().nullable() })
	.openapi("InvitationPage");

const RoleKey = z
	.string()
	.trim()
	.min(1)
	.max(64)
	.regex(/^[A-Za-z0-9:_-]+$/, "a role key such as org:member")
	.openapi({ example: "org:member" });

const InviteBody = z
	.object({
		emailAddress: z.email().max(320),
		role: RoleKey.default("org:member"),
	})
	.strict()
	.openapi("InvitationCreate");

const RoleBody = z.object({ role: RoleKey }).strict().openapi("MemberRoleUpdate");

const InvitationParams = OrgIdParam.extend({
	invitationId: z
		.string()
		.min(1)
		.max(128)
		.openapi({ param: { name: "invitationId", in: "path" }, example: "orginv_2abc" }),
});
const MemberParams = OrgIdParam.extend({
	userId: z
		.string()
		.min(1)
		.max(128)
		.openapi({ param: { name: "userId", in: "path" }, example: "user_2abc" }),
});

const manage = () => tenantMiddleware(requirePermission("org:members:manage"));
const managed = {
	...orgErrors,
	402: problem("Past the plan's seats, or a custom role the plan does not include (names the plan that allows it)"),
	404: problem("Unknown organization, member or invitation"),
	409: problem("Conflicts with the organization's state (the last admin, an invitation no longer pending, a duplicate)"),
	503: problem("Session keys or the identity provider (Clerk) temporarily unavailable"),
} as const;

export const createInvitation = createRoute({
	method: "post",
	path: "/api/orgs/{orgId}/invitations",
	tags: ["members"],
	summary: OPENAPI_TEXT ? "Invite someone by email (Clerk createOrganizationInvitation; org:members:manage)" : undefined,
	description:
		OPENAPI_TEXT ? "Counts against the plan's seats (members + pending invitations): 402 past them, naming the plan with enough seats. " +
		"403 for a caller other than an admin when the role holds a permission the caller does not, or is org:admin." : undefined,
	security: [{ bearer: [] }],
	middleware: manage(),
	request: {
		params: OrgIdParam,
		body: { required: true, content: { "application/json": { schema: InviteBody } } },
	},
	responses: { 201: jsonContent(InvitationSchema, "The invitation as Clerk created it"), ...managed },
});

export const listInvitations = createRoute({
	method: "get",
	path: "/api/orgs/{orgId}/invitations",
	tags: ["members"],
	summary: OPENAPI_TEXT ? "Invitations of the organization, newest first (org:members:manage)" : undefined,
	description: OPENAPI_TEXT ? "Read from D1, which the Clerk webhook sync and the changes made here keep current." : undefined,
	security: [{ bearer: [] }],
	middleware: manage(),
	request: {
		params: OrgIdParam,
		query: CursorQuery.extend({ status: z.enum(["pending", "accepted", "revoked", "expired"]).optional() }),
	},
	responses: { 200: jsonContent(InvitationPage, "A page of invitations"), ...managed },
});

export const revokeInvitation = createRoute({
	method: "delete",
	path: "/api/orgs/{orgId}/invitations/{invitationId}",
	tags: ["members"],
	summary: OPENAPI_TEXT ? "Revoke a pending invitation (Clerk revokeOrganizationInvitation; org:members:manage)" : undefined,
	security: [{ bearer: [] }],
	middleware: manage(),
	request: { params: InvitationParams },
	responses: { 200: jsonContent(InvitationSchema, "The revoked invitation as Clerk returned it"), ...managed },
});

export const updateMember = createRoute({
	method: "patch",
	path: "/api/orgs/{orgId}/members/{userId}",
	tags: ["members"],
	summary: OPENAPI_TEXT ? "Change a member's role (Clerk updateOrganizationMembership; org:members:manage)" : undefined,
	description:
		OPENAPI_TEXT ? "409 when it would demote the organization's last admin. 403 for a caller other than an admin when the member's " +
		"current role or the new one holds a permission the caller does not, or is org:admin." : undefined,
	security: [{ bearer: [] }],
	middleware: manage(),
	request: {
		params: MemberParams,
		body: { required: true, content: { "application/json": { schema: RoleBody } } },
	},
	responses: { 200: jsonContent(MemberSchema, "The membership as Clerk returned it"), ...managed },
});

export const removeMember = createRoute({
	method: "delete",
	path: "/api/orgs/{orgId}/members/{userId}",
	tags: ["members"],
	summary: OPENAPI_TEXT ? "Remove a member (Clerk deleteOrganizationMembership; org:members:manage)" : undefined,
	description:
		OPENAPI_TEXT ? "409 for the organization's last admin. 403 for a caller other than an admin when the member's role holds a " +
		"permission the caller does not, or is org:admin." : undefined,
	security: [{ bearer: [] }],
	middleware: manage(),
	request: { params: MemberParams },
	responses: { 204: { description: OPENAPI_TEXT ? "Removed" : undefined }, ...managed },
});
