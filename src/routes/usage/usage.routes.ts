import { createRoute, z } from "@hono/zod-openapi";
import { requirePermission } from "../../middleware/authorize";
import { tenantMiddleware } from "../../middleware/tenant";
import { jsonContent, OrgIdParam, orgErrors } from "../../openapi";

export const UsageSchema = z
	.object({
		organizationId: z.string(),
		metric: z.literal("api_calls"),
		period: z.object({ month: z.string(), start: z.string(), end: z.string() }),
		used: z.number().int(),
		quota: z.number().int(),
		remaining: z.number().int(),
		percent: z.number(),
		daily: z.array(z.object({ day: z.string(), count: z.number().int() })),
	})
	.openapi("Usage");

export const getUsage = createRoute({
	method: "get",
	path: "/api/orgs/{orgId}/usage",
	tags: ["usage"],
	summary: OPENAPI_TEXT ? "API calls this month (UTC) against the plan's quota (org:usage:read)" : undefined,
	security: [{ bearer: [] }],
	middleware: tenantMiddleware(requirePermission("org:usage:read")),
	request: { params: OrgIdParam },
	responses: { 200: jsonContent(UsageSchema, "Usage"), ...orgErrors },
});
