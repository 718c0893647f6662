import { createRoute, z } from "@hono/zod-openapi";
import { requirePermission, requireRole } from "../../middleware/authorize";
import { tenantMiddleware } from "../../middleware/tenant";
import { CursorQuery, jsonContent, OrgIdParam, orgErrors } from "../../openapi";

export const OrganizationSchema = z
	.object({
		id: z.string(),
		name: z.string().nullable(),
		slug: z.string().nullable(),
		imageUrl: z.string().nullable(),
		plan: z.string(),
		createdAt: z.number().int(),
		updatedAt: z.number().int(),
		role: z.string().nullable().openapi({ description: OPENAPI_TEXT ? "The caller's role in this organization; null for an API key" : undefined }),
	})
	.openapi("Organization");

export const MemberSchema = z
	.object({
		id: z.string(),
		userId: z.string(),
		role: z.string(),
		email: z.string().nullable(),
		firstName: z.string().nullable(),
		lastName: z.string().nullable(),
		createdAt: z.number().int(),
	})
	.openapi("Member");

export const EventSchema = z
	.object({
		svixId: z.string(),
		type: z.string(),
		entityId: z.string().nullable(),
		receivedAt: z.number().int(),
		processedAt: z.number().int().nullable(),
		outcome: z.string(),
	})
	.openapi("IdentityEvent");

const page = <T extends z.ZodType>(item: T, name: string) =>
	z.object({ data: z.array(item), nextCursor: z.string().nullable() }).openapi(name);

const member = tenantMiddleware();

export const getOrg = createRoute({
	method: "get",
	path: "/api/orgs/{orgId}",
	tags: ["organizations"],
	summary: OPENAPI_TEXT ? "An organization the caller belongs to" : undefined,
	security: [{ bearer: [] }],
	middleware: member,
	request: { params: OrgIdParam },
	responses: { 200: jsonContent(OrganizationSchema, "The organization"), ...orgErrors },
});

export const listMembers = createRoute({
	method: "get",
	path: "/api/orgs/{orgId}/members",
	tags: ["organizations"],
	summary: OPENAPI_TEXT ? "Members of the organization (org:members:read)" : undefined,
	security: [{ bearer: [] }],
	middleware: tenantMiddleware(requirePermission("org:members:read")),
	request: { params: OrgIdParam, query: CursorQuery },
	responses: { 200: jsonContent(page(MemberSchema, "MemberPage"), "A page of members"), ...orgErrors },
});

export const adminData = createRoute({
	method: "get",
	path: "/api/orgs/{orgId}/admin-data",
	tags: ["organizations"],
	summary: OPENAPI_TEXT ? "Admin-only summary (role org:admin)" : undefined,
	security: [{ bearer: [] }],
	middleware: tenantMiddleware(requireRole("org:admin")),
	request: { params: OrgIdParam },
	responses: {
		200: jsonContent(
			z
				.object({
					organizationId: z.string(),
					memberCount: z.number().int(),
					admins: z.number().int(),
					pendingInvitations: z.number().int(),
				})
				.openapi("AdminData"),
			"Admin data",
		),
		...orgErrors,
	},
});

export const listEvents = createRoute({
	method: "get",
	path: "/api/orgs/{orgId}/events",
	tags: ["organizations"],
	summary: OPENAPI_TEXT ? "Identity events received for the organization (role org:admin)" : undefined,
	security: [{ bearer: [] }],
	middleware: tenantMiddleware(requireRole("org:admin")),
	request: {
		params: OrgIdParam,
		query: CursorQuery.extend({ type: z.string().max(100).optional().openapi({ example: "user.updated" }) }),
	},
	responses: { 200: jsonContent(page(EventSchema, "EventPage"), "A page of events, newest first"), ...orgErrors },
});
