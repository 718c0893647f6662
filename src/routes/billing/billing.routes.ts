import { createRoute, z } from "@hono/zod-openapi";
import { requirePermission, requireRole } from "../../middleware/authorize";
import { tenantMiddleware } from "../../middleware/tenant";
import { jsonContent, OrgIdParam, orgErrors, problem } from "../../openapi";

export const BillingSchema = z
	.object({
		organizationId: z.string(),
		plan: z.enum(["free", "pro", "enterprise"]),
		status: z.string().openapi({ description: "Subscription status (active, past_due, canceled …) or none" }),
		periodEnd: z.number().int().nullable(),
		provider: z.string().nullable(),
		entitlements: z.object({
			features: z.record(z.string(), z.boolean()),
			limits: z.object({
				requestsPerMinute: z.number().int(),
				userRequestsPerMinute: z.number().int(),
				monthlyApiQuota: z.number().int(),
				seats: z.number().int(),
			}),
		}),
	})
	.openapi("Billing");

export const getBilling = createRoute({
	method: "get",
	path: "/api/orgs/{orgId}/billing",
	tags: ["billing"],
	summary: "Plan, subscription status, period end and entitlements (org:billing:read)",
	security: [{ bearer: [] }],
	middleware: tenantMiddleware(requirePermission("org:billing:read")),
	request: { params: OrgIdParam },
	responses: { 200: jsonContent(BillingSchema, "Billing state"), ...orgErrors },
});

export const checkout = createRoute({
	method: "post",
	path: "/api/orgs/{orgId}/billing/checkout",
	tags: ["billing"],
	summary: "Start a Stripe Checkout subscription for a paid plan (org:admin)",
	description:
		"An organization has at most one live (active, trialing, past_due) subscription: while it has one, this answers 409 " +
		"and the plan is changed or the subscription canceled through the billing portal (POST /api/orgs/{orgId}/billing/portal).",
	security: [{ bearer: [] }],
	middleware: tenantMiddleware(requireRole("org:admin")),
	request: {
		params: OrgIdParam,
		body: {
			required: true,
			content: {
				"application/json": {
					schema: z.strictObject({
						plan: z.enum(["pro", "enterprise"]),
						successUrl: z.url({ protocol: /^https?$/ }),
						cancelUrl: z.url({ protocol: /^https?$/ }),
					}),
				},
			},
		},
	},
	responses: {
		201: jsonContent(z.object({ id: z.string(), url: z.string().nullable() }).openapi("CheckoutSession"), "Session created"),
		...orgErrors,
		409: problem("The organization already has a live subscription: change it in the billing portal"),
	},
});
