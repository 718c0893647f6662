import { createRoute, z } from "@hono/zod-openapi";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../../env";
import { ApiError } from "../../errors";
import { requireFeature, requireRole } from "../../middleware/authorize";
import { tenantMiddleware } from "../../middleware/tenant";
import { CursorQuery, jsonContent, OrgIdParam, orgErrors, problem } from "../../openapi";

/** Audit reads: org:audit:read; admins keep access whatever their role's permission set says. */
const canReadAudit = createMiddleware<AppEnv>(async (c, next) => {
	const { role, permissions } = c.get("access");
	if (role !== "org:admin" && !permissions.includes("org:audit:read")) throw new ApiError("FORBIDDEN", "missing permission org:audit:read");
	await next();
});

const middleware = tenantMiddleware(canReadAudit, requireFeature("audit_log"));

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
	summary: OPENAPI_TEXT ? "The organization's audit log, newest first (org:audit:read; admins)" : undefined,
	security: [{ bearer: [] }],
	middleware,
	request: {
		params: OrgIdParam,
		query: CursorQuery.extend({
			actor: z.string().max(128).optional().openapi({ description: OPENAPI_TEXT ? "Actor user id, or 'system'" : undefined }),
			action: z.string().max(100).optional().openapi({ example: "product.updated" }),
			from: z.coerce.number().int().optional().openapi({ description: OPENAPI_TEXT ? "occurredAt >= (ms)" : undefined }),
			to: z.coerce.number().int().optional().openapi({ description: OPENAPI_TEXT ? "occurredAt < (ms)" : undefined }),
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
	summary: OPENAPI_TEXT ? "Verify the hash chain, a bounded slice per call, from the last verified checkpoint (role org:admin)" : undefined,
	description:
		OPENAPI_TEXT ? "Re-hashes at most 1,000 entries per call, starting after the organization's last verified checkpoint " +
		"(or from `cursor`, or from genesis with `full=1`), and moves the checkpoint forward over what verified. " +
		"While `nextCursor` is not null, pass it as `cursor` to continue. `full=1` (then the cursors) re-verifies " +
		"the whole chain; a break at or before the checkpoint moves the checkpoint back." : undefined,
	security: [{ bearer: [] }],
	// Verification moves the organization's checkpoint: its admins only (API.md), where reading entries takes org:audit:read.
	middleware: tenantMiddleware(requireRole("org:admin"), requireFeature("audit_log")),
	request: {
		params: OrgIdParam,
		query: z.object({
			cursor: z.string().max(512).optional().openapi({ description: OPENAPI_TEXT ? "nextCursor of the previous call: continue from there" : undefined }),
			full: z
				.enum(["1", "true", "0", "false"])
				.optional()
				.openapi({ description: OPENAPI_TEXT ? "1: start from genesis instead of the checkpoint (ignored with a cursor)" : undefined }),
		}),
	},
	responses: {
		200: jsonContent(
			z
				.object({
					intact: z.boolean().openapi({ description: OPENAPI_TEXT ? "No break found in what this call verified" : undefined }),
					entries: z.number().int().openapi({ description: OPENAPI_TEXT ? "Entries verified by this call" : undefined }),
					headSeq: z.number().int().nullable().openapi({ description: OPENAPI_TEXT ? "The chain's last entry (null: no entries)" : undefined }),
					headHash: z.string().nullable(),
					checkedThrough: z
						.number()
						.int()
						.openapi({ description: OPENAPI_TEXT ? "Last seq known intact after this call (verified now, or the checkpoint); 0: none" : undefined }),
					nextCursor: z.string().nullable().openapi({ description: OPENAPI_TEXT ? "Continue with ?cursor=; null once the head is reached" : undefined }),
					brokenAt: z
						.object({ seq: z.number().int(), reason: z.enum(["hash mismatch", "broken link", "sequence gap"]) })
						.optional(),
				})
				.openapi("AuditChainReport"),
			"Chain report",
		),
		...orgErrors,
		402: problem("The plan does not include the audit log"),
	},
});
