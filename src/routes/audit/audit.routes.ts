import { createRoute, z } from "@hono/zod-openapi";
import { requireFeature, requireRole } from "../../middleware/authorize";
import { tenantMiddleware } from "../../middleware/tenant";
import { CursorQuery, jsonContent, OrgIdParam, orgErrors, problem } from "../../openapi";

const middleware = tenantMiddleware(requireRole("org:admin"), requireFeature("audit_log"));

export const AuditEntrySchema = z
	.object({
		id: z.string(),
		seq: z.number().int(),
		actor: z.object({ type: z.enum(["user", "system"]), id: z.string().nullable() }),
		action: z.string(),
		target: z.object({ type: z.string().nullable(), id: z.string().nullable() }),
		before: z.unknown().nullable(),
		after: z.unknown().nullable(),
		context: z.object({
			ip: z.string().nullable(),
			country: z.string().nullable(),
			userAgent: z.string().nullable(),
			requestId: z.string().nullable(),
		}),
		occurredAt: z.number().int(),
		prevHash: z.string(),
		hash: z.string(),
	})
	.openapi("AuditEntry");

export const listAuditLogs = createRoute({
	method: "get",
	path: "/api/orgs/{orgId}/audit-logs",
	tags: ["audit"],
	summary: "The organization's audit log, newest first (org:admin)",
	security: [{ bearer: [] }],
	middleware,
	request: {
		params: OrgIdParam,
		query: CursorQuery.extend({
			actor: z.string().max(128).optional().openapi({ description: "Actor user id, or 'system'" }),
			action: z.string().max(100).optional().openapi({ example: "product.updated" }),
			from: z.coerce.number().int().optional().openapi({ description: "occurredAt >= (ms)" }),
			to: z.coerce.number().int().optional().openapi({ description: "occurredAt < (ms)" }),
		}),
	},
	responses: {
		200: jsonContent(
			z.object({ data: z.array(AuditEntrySchema), nextCursor: z.string().nullable() }).openapi("AuditPage"),
			"A page of entries",
		),
		...orgErrors,
		402: problem("The plan does not include the audit log"),
	},
});

export const verifyAuditLogs = createRoute({
	method: "get",
	path: "/api/orgs/{orgId}/audit-logs/verify",
	tags: ["audit"],
	summary: "Recompute the hash chain and report whether it is intact (org:admin)",
	security: [{ bearer: [] }],
	middleware,
	request: { params: OrgIdParam },
	responses: {
		200: jsonContent(
			z
				.object({
					intact: z.boolean(),
					entries: z.number().int(),
					headSeq: z.number().int().nullable(),
					headHash: z.string().nullable(),
					brokenAt: z.object({ seq: z.number().int(), reason: z.string() }).optional(),
				})
				.openapi("AuditChainReport"),
			"Chain report",
		),
		...orgErrors,
		402: problem("The plan does not include the audit log"),
	},
});
