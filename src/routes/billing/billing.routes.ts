import { createRoute, z } from "@hono/zod-openapi";
import { requirePermission } from "../../middleware/authorize";
import { tenantMiddleware } from "../../middleware/tenant";
import { idempotency } from "../../middleware/idempotency";
import { CursorQuery, IdempotencyKeyHeader, jsonContent, OrgIdParam, orgErrors, problem } from "../../openapi";

/** Checkout, portal, cancel and invoices: org:billing:manage (admins hold it). */
const manage = () => tenantMiddleware(requirePermission("org:billing:manage"));

export const BillingSchema = z
	.object({
		organizationId: z.string(),
		plan: z.enum(["free", "pro", "enterprise"]),
		status: z.string().openapi({ description: OPENAPI_TEXT ? "Subscription status (active, past_due, canceled …) or none" : undefined }),
		periodEnd: z.number().int().nullable(),
		provider: z.string().nullable(),
		cancelAtPeriodEnd: z
			.boolean()
			.openapi({ description: OPENAPI_TEXT ? "The subscription ends at periodEnd (canceled at period end); the plan is kept until then" : undefined }),
		trialEnd: z.number().int().nullable().openapi({ description: OPENAPI_TEXT ? "End of the trial (ms), while trialing" : undefined }),
		graceUntil: z.number().int().nullable().openapi({
			description: OPENAPI_TEXT ? "While past_due: the plan is kept until then (7 days after the payment failed), then falls back to free" : undefined,
		}),
		entitlements: z.object({
			features: z.record(z.string(), z.boolean()),
			limits: z.object({
				requestsPerMinute: z.number().int(),
				userRequestsPerMinute: z.number().int(),
				monthlyApiQuota: z.number().int(),
				seats: z.number().int(),
				apiKeys: z.number().int(),
			}),
		}),
	})
	.openapi("Billing");

export const getBilling = createRoute({
	method: "get",
	path: "/api/orgs/{orgId}/billing",
	tags: ["billing"],
	summary: OPENAPI_TEXT ? "Plan, subscription status, period end and entitlements (org:billing:read)" : undefined,
	security: [{ bearer: [] }],
	middleware: tenantMiddleware(requirePermission("org:billing:read")),
	request: { params: OrgIdParam },
	responses: { 200: jsonContent(BillingSchema, "Billing state"), ...orgErrors },
});

export const checkout = createRoute({
	method: "post",
	path: "/api/orgs/{orgId}/billing/checkout",
	tags: ["billing"],
	summary: OPENAPI_TEXT ? "Start a Stripe Checkout subscription for a paid plan (org:billing:manage)" : undefined,
	description:
		OPENAPI_TEXT ? "An organization has at most one subscription Stripe may bill (any status but canceled or incomplete_expired): while it has one, this answers 409 " +
		"and the plan is changed or the subscription canceled through the billing portal (POST /api/orgs/{orgId}/billing/portal). " +
		"Only the organization's last Checkout can be paid: starting one expires its earlier open sessions at Stripe." : undefined,
	security: [{ bearer: [] }],
	// A retried Checkout with its Idempotency-Key gets the session it opened, instead of a new one that expires it.
	middleware: [...manage(), idempotency()],
	request: {
		params: OrgIdParam,
		headers: IdempotencyKeyHeader,
		body: {
			required: true,
			content: {
				"application/json": {
					schema: z.strictObject({
						plan: z.enum(["pro", "enterprise"]),
						successUrl: z.url({ protocol: /^https?$/ }).max(2048),
						cancelUrl: z.url({ protocol: /^https?$/ }).max(2048),
					}),
				},
			},
		},
	},
	responses: {
		201: jsonContent(z.object({ id: z.string(), url: z.string().nullable() }).openapi("CheckoutSession"), "Session created"),
		...orgErrors,
		409: problem(
			"The organization already has a subscription Stripe may bill (or an earlier Checkout was just paid): change it in the billing portal; or Idempotency-Key reuse",
		),
	},
});

const noCustomer = problem("The organization has no Stripe customer yet (subscribe with checkout first)");

export const portal = createRoute({
	method: "post",
	path: "/api/orgs/{orgId}/billing/portal",
	tags: ["billing"],
	summary: OPENAPI_TEXT ? "A Stripe Billing Portal session: change plan, payment method, cancel (org:billing:manage)" : undefined,
	description:
		OPENAPI_TEXT ? "Creates a short-lived Billing Portal session for the organization's Stripe customer and answers with its URL; " +
		"send the user there. Changes made in the portal come back through the Stripe webhook." : undefined,
	security: [{ bearer: [] }],
	middleware: manage(),
	request: {
		params: OrgIdParam,
		body: {
			required: false,
			content: {
				"application/json": {
					schema: z.strictObject({
						returnUrl: z
							.url({ protocol: /^https?$/ })
							.max(2048)
							.optional()
							.openapi({ description: OPENAPI_TEXT ? "Where the portal sends the user back (default: the portal configuration's)" : undefined }),
					}),
				},
			},
		},
	},
	responses: {
		201: jsonContent(z.object({ id: z.string(), url: z.string() }).openapi("BillingPortalSession"), "Session created"),
		...orgErrors,
		409: noCustomer,
		503: problem("Stripe could not be reached"),
	},
});

export const SubscriptionStateSchema = z
	.object({
		subscriptionId: z.string(),
		plan: z.enum(["free", "pro", "enterprise"]),
		status: z.string().openapi({ description: OPENAPI_TEXT ? "Stripe's status after the call (canceled when canceled now)" : undefined }),
		cancelAtPeriodEnd: z.boolean(),
		cancelAt: z.number().int().nullable().openapi({ description: OPENAPI_TEXT ? "When it ends (ms), if scheduled" : undefined }),
		canceledAt: z.number().int().nullable(),
		currentPeriodEnd: z.number().int().nullable(),
		trialEnd: z.number().int().nullable(),
	})
	.openapi("SubscriptionState");

export const cancel = createRoute({
	method: "post",
	path: "/api/orgs/{orgId}/billing/cancel",
	tags: ["billing"],
	summary: OPENAPI_TEXT ? "Cancel the subscription at period end, or now (org:billing:manage)" : undefined,
	description:
		OPENAPI_TEXT ? "`atPeriodEnd: true` sets Stripe's cancel_at_period_end: the plan is kept until the period ends. " +
		"`atPeriodEnd: false` cancels now, with a last invoice for the metered usage already reported this period and no " +
		"proration credit for the unused time. Answers with the subscription as Stripe returned it; the plan follows " +
		"through the Stripe webhook (and, if that event is lost, the cron's period-end check)." : undefined,
	security: [{ bearer: [] }],
	middleware: manage(),
	request: {
		params: OrgIdParam,
		body: {
			required: true,
			content: { "application/json": { schema: z.strictObject({ atPeriodEnd: z.boolean() }) } },
		},
	},
	responses: {
		200: jsonContent(SubscriptionStateSchema, "The subscription after the call"),
		...orgErrors,
		409: problem("No subscription Stripe may still bill, or Stripe refused the change"),
		503: problem("Stripe could not be reached"),
	},
});

export const InvoiceSchema = z
	.object({
		id: z.string(),
		number: z.string().nullable(),
		status: z.string().nullable().openapi({ description: OPENAPI_TEXT ? "draft, open, paid, uncollectible or void" : undefined }),
		currency: z.string(),
		total: z.number().int(),
		amountDue: z.number().int(),
		amountPaid: z.number().int(),
		created: z.number().int(),
		periodStart: z.number().int(),
		periodEnd: z.number().int(),
		hostedInvoiceUrl: z.string().nullable(),
		invoicePdf: z.string().nullable(),
		subscriptionId: z.string().nullable(),
	})
	.openapi("Invoice");

export const invoices = createRoute({
	method: "get",
	path: "/api/orgs/{orgId}/billing/invoices",
	tags: ["billing"],
	summary: OPENAPI_TEXT ? "The organization's invoices from Stripe, newest first (org:billing:manage)" : undefined,
	description: OPENAPI_TEXT ? "Paginated: `nextCursor` (Stripe's last invoice id, used as starting_after) continues the list. Never billed: empty." : undefined,
	security: [{ bearer: [] }],
	middleware: manage(),
	request: {
		params: OrgIdParam,
		query: CursorQuery.extend({
			cursor: z
				.string()
				.regex(/^in_[A-Za-z0-9_]{1,250}$/, "not a cursor from this list")
				.optional()
				.openapi({ description: OPENAPI_TEXT ? "nextCursor of the previous page" : undefined }),
		}),
	},
	responses: {
		200: jsonContent(
			z.object({ data: z.array(InvoiceSchema), nextCursor: z.string().nullable() }).openapi("InvoicePage"),
			"A page of invoices",
		),
		...orgErrors,
		503: problem("Stripe could not be reached"),
	},
});
