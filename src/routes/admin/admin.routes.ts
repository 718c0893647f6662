import { createRoute, z } from "@hono/zod-openapi";
import { requireAuth } from "../../middleware/auth";
import { requireOperator } from "../../middleware/authorize";
import { recordOperatorActions } from "../../middleware/operator-actions";
import { rateLimit } from "../../middleware/rate-limit";
import { jsonBodyLimit } from "../../lib/create-app";
import { authErrors, CursorQuery, jsonContent, OrgIdParam, problem } from "../../openapi";
import { PLAN_IDS } from "../../services/plans";

export const replayEvent = createRoute({
	method: "post",
	path: "/api/admin/events/{svixId}/replay",
	tags: ["admin"],
	summary: OPENAPI_TEXT ? "Re-queue a stored webhook event (operators only)" : undefined,
	description: OPENAPI_TEXT ? "Operators are the user ids listed in OPERATOR_USER_IDS, signed in with a valid session token." : undefined,
	security: [{ bearer: [] }],
	middleware: [requireAuth(), requireOperator(), rateLimit("user"), recordOperatorActions()],
	request: {
		params: z.object({
			svixId: z
				.string()
				.min(1)
				.max(200)
				.openapi({ param: { name: "svixId", in: "path" }, example: "msg_2abc" }),
		}),
	},
	responses: {
		202: jsonContent(z.object({ status: z.literal("queued"), svixId: z.string() }).openapi("ReplayAccepted"), "Re-queued"),
		...authErrors,
		403: problem("Not an operator"),
		404: problem("Unknown event"),
	},
});

const operator = {
	tags: ["admin"],
	security: [{ bearer: [] }],
	middleware: [requireAuth(), requireOperator(), rateLimit("user"), recordOperatorActions()],
};
const operatorErrors = { ...authErrors, 403: problem("Not an operator") };

const QueueHealthSchema = z
	.object({
		queue: z.enum(["webhook-events", "tenant-events"]),
		backlog: z.number().int().openapi({ description: OPENAPI_TEXT ? "Accepted, not yet processed (webhook events queued; tenant events pending in an outbox, tenant stores' as they reported them)" : undefined }),
		oldestPendingAgeMs: z.number().int().nullable().openapi({ description: OPENAPI_TEXT ? "Age of the oldest of them; null when none" : undefined }),
		failed: z.number().int().openapi({ description: OPENAPI_TEXT ? "Dead-lettered and kept failed, to inspect and replay" : undefined }),
	})
	.openapi("QueueHealth");

export const health = createRoute({
	...operator,
	method: "get",
	path: "/api/admin/health",
	summary: OPENAPI_TEXT ? "System health for operators: D1, queue backlogs and failures, failing outgoing endpoints" : undefined,
	responses: {
		200: jsonContent(
			z
				.object({
					status: z.enum(["ok", "degraded"]),
					checkedAt: z.number().int(),
					d1: z.object({ ok: z.boolean(), latencyMs: z.number().int() }),
					queues: z.array(QueueHealthSchema),
					outgoingEndpoints: z.object({
						failing: z.number().int().openapi({ description: OPENAPI_TEXT ? "Enabled endpoints whose last deliveries failed" : undefined }),
						disabled: z.number().int(),
					}),
				})
				.openapi("OperatorHealth"),
			"Health report (degraded: failed events, or a pending event older than 5 minutes, or D1 unreachable)",
		),
		...operatorErrors,
	},
});

export const listEvents = createRoute({
	...operator,
	method: "get",
	path: "/api/admin/events",
	summary: OPENAPI_TEXT ? "Webhook events of every organization, newest first (e.g. ?outcome=failed); replay with POST /api/admin/events/{svixId}/replay" : undefined,
	request: {
		query: CursorQuery.extend({
			outcome: z.enum(["queued", "processed", "stale", "ignored", "failed"]).optional(),
			type: z.string().max(200).optional(),
		}),
	},
	responses: {
		200: jsonContent(
			z
				.object({
					data: z.array(
						z.object({
							svixId: z.string(),
							organizationId: z.string().nullable(),
							source: z.string(),
							type: z.string(),
							entityId: z.string().nullable(),
							receivedAt: z.number().int(),
							processedAt: z.number().int().nullable(),
							outcome: z.enum(["queued", "processed", "stale", "ignored", "failed"]),
							attempts: z.number().int(),
							error: z.string().nullable(),
						}),
					),
					nextCursor: z.string().nullable(),
				})
				.openapi("OperatorEventPage"),
			"A page of events",
		),
		...operatorErrors,
	},
});

const limit = (description: string) => z.number().int().min(0).max(1_000_000_000).nullable().openapi({ description });
const perMinute = (description: string) => z.number().int().min(1).max(1_000_000_000).nullable().optional().openapi({ description });
const OverridesSchema = z.object({
	rateLimitPerMinute: limit("Organization requests per minute; null: the plan's"),
	userRateLimitPerMinute: limit("Requests per minute per user; null: the plan's"),
	monthlyApiQuota: limit("Monthly API calls; null: the plan's"),
	seatLimit: limit("Members plus pending invitations; null: the plan's"),
});
const OperatorOrgSchema = z
	.object({
		id: z.string(),
		name: z.string().nullable(),
		slug: z.string().nullable(),
		plan: z.enum(PLAN_IDS),
		dataRegion: z.enum(["default", "eu"]),
		suspended: z.boolean(),
		suspendedAt: z.number().int().nullable(),
		overrides: OverridesSchema,
		limits: z.object({
			requestsPerMinute: z.number().int(),
			userRequestsPerMinute: z.number().int(),
			monthlyApiQuota: z.number().int(),
			seats: z.number().int(),
		}),
		hasData: z.boolean().openapi({ description: OPENAPI_TEXT ? "The tenant holds records (audit entries too): dataRegion is then fixed" : undefined }),
		createdAt: z.number().int(),
		updatedAt: z.number().int(),
		deletedAt: z.number().int().nullable(),
	})
	.openapi("OperatorOrganization");

export const getOrg = createRoute({
	...operator,
	method: "get",
	path: "/api/admin/orgs/{orgId}",
	summary: OPENAPI_TEXT ? "An organization's plan, overrides, effective limits, suspension and data region" : undefined,
	request: { params: OrgIdParam },
	responses: { 200: jsonContent(OperatorOrgSchema, "The organization"), ...operatorErrors, 404: problem("Unknown organization") },
});

export const updateOrg = createRoute({
	...operator,
	middleware: [...operator.middleware, jsonBodyLimit],
	method: "patch",
	path: "/api/admin/orgs/{orgId}",
	summary: OPENAPI_TEXT ? "Operator overrides: plan, rate limits, monthly quota, seats, suspend/unsuspend, data region (audited)" : undefined,
	description:
		OPENAPI_TEXT ? "Only the fields given change; null resets an override to the plan's value. A suspended organization's routes answer 403 ORG_SUSPENDED. dataRegion changes only while the organization has no data (409 afterwards)." : undefined,
	request: {
		params: OrgIdParam,
		body: {
			required: true,
			content: {
				"application/json": {
					schema: OverridesSchema.partial()
						.extend({
							// A rate limit of 0 would still let one request a minute through (a bucket holds at least one
							// token): refused, as suspended: true is what refuses every request.
							rateLimitPerMinute: perMinute("Organization requests per minute (at least 1); null: the plan's"),
							userRateLimitPerMinute: perMinute("Requests per minute per user (at least 1); null: the plan's"),
						})
						.extend({ plan: z.enum(PLAN_IDS).optional(), suspended: z.boolean().optional(), dataRegion: z.enum(["default", "eu"]).optional() })
						.strict()
						.openapi("OperatorOrganizationPatch"),
				},
			},
		},
	},
	responses: {
		200: jsonContent(OperatorOrgSchema, "The organization after the change"),
		...operatorErrors,
		404: problem("Unknown organization"),
		409: problem("dataRegion cannot change: the organization has data"),
		413: problem("Body too large"),
		415: problem("Not JSON"),
	},
});

const OutboxParam = z.object({
	id: z
		.string()
		.min(1)
		.max(200)
		.openapi({ param: { name: "id", in: "path" }, example: "aud_0123" }),
});

export const listOutbox = createRoute({
	...operator,
	method: "get",
	path: "/api/admin/outbox",
	summary: OPENAPI_TEXT ? "Tenant events in the outbox (e.g. ?status=failed: dead-lettered past the relay bound), oldest first" : undefined,
	request: { query: CursorQuery.extend({ status: z.enum(["pending", "failed"]).optional() }) },
	responses: {
		200: jsonContent(
			z
				.object({
					data: z.array(
						z.object({
							id: z.string(),
							organizationId: z.string().nullable(),
							status: z.enum(["pending", "failed"]),
							attempts: z.number().int().openapi({ description: OPENAPI_TEXT ? "Relays that came back from the dead-letter queue" : undefined }),
							lastError: z.string().nullable(),
							createdAt: z.number().int(),
							updatedAt: z.number().int().nullable(),
							event: z.record(z.string(), z.unknown()).openapi({ description: OPENAPI_TEXT ? "The tenant event (audit entry, outgoing event)" : undefined }),
						}),
					),
					nextCursor: z.string().nullable(),
				})
				.openapi("OutboxPage"),
			"A page of outbox rows",
		),
		...operatorErrors,
	},
});

export const replayOutbox = createRoute({
	...operator,
	method: "post",
	path: "/api/admin/outbox/{id}/replay",
	summary: OPENAPI_TEXT ? "Re-arm an outbox row (pending, fresh relay budget): the cron sends it within a minute" : undefined,
	request: { params: OutboxParam },
	responses: {
		202: jsonContent(z.object({ status: z.literal("pending"), id: z.string() }).openapi("OutboxReplayAccepted"), "Re-armed"),
		...operatorErrors,
		404: problem("Unknown outbox row"),
	},
});

export const exportOrg = createRoute({
	...operator,
	method: "get",
	path: "/api/admin/orgs/{orgId}/export",
	summary: OPENAPI_TEXT ? "Export a tenant's whole data as NDJSON, streamed (operators only)" : undefined,
	description:
		OPENAPI_TEXT ? 'One line per record: `{"type": …, "data": {…}}`. Directory records first (`organization`, `member`, `invitation`, ' +
		"`api_key`, `revoked_api_key`, `subscription`, `payment_order`, `payment_transaction`, `usage_day`, `event`), then the " +
		"tenant store's (`category`, `product`, `variant`, `order` with its items and history, `audit_entry`, `audit_checkpoint`, " +
		"`webhook_endpoint`, `webhook_delivery` with its `endpointId` beside `data`, `idempotency_key`, `outbox_event`). `data` is the " +
		"JSON the API answers for that resource; records the API does not render carry their stored columns (never a secret or a " +
		"key hash). Pages are read one after the other, not as one snapshot: suspend the organization first for a frozen export." : undefined,
	request: { params: OrgIdParam },
	responses: {
		200: {
			description: OPENAPI_TEXT ? "The tenant's records, one JSON object per line" : undefined,
			content: { "application/x-ndjson": { schema: z.string().openapi({ example: '{"type":"product","data":{"id":"prd_0123"}}\n' }) } },
		},
		...operatorErrors,
		404: problem("Unknown or deleted organization"),
	},
});

export const deleteOrg = createRoute({
	...operator,
	method: "delete",
	path: "/api/admin/orgs/{orgId}",
	summary: OPENAPI_TEXT ? "Offboard a tenant: wipe its store, keep its directory row marked deleted (operators only)" : undefined,
	description:
		OPENAPI_TEXT ? "The organization's routes answer 404 from then on; GET /api/admin/orgs/{orgId} still shows it, with deletedAt. " +
		"Idempotent: repeating it wipes the store again (retry after a 5xx). Export first (GET …/export) if the data is to be kept." : undefined,
	request: { params: OrgIdParam },
	responses: {
		202: jsonContent(
			z
				.object({ status: z.literal("deleted"), organizationId: z.string(), deletedAt: z.number().int() })
				.openapi("OrganizationOffboarded"),
			"Wiped; the directory row is kept as deleted",
		),
		...operatorErrors,
		404: problem("Unknown organization"),
	},
});

export const listActions = createRoute({
	...operator,
	method: "get",
	path: "/api/admin/actions",
	summary: OPENAPI_TEXT ? "What operators did (overrides, deletions, exports, replays), newest first; ?organizationId= for one tenant" : undefined,
	request: { query: CursorQuery.extend({ organizationId: z.string().min(1).max(200).optional() }) },
	responses: {
		200: jsonContent(
			z
				.object({
					data: z.array(
						z.object({
							id: z.string(),
							at: z.number().int(),
							operatorId: z.string(),
							action: z.string().openapi({
								description: OPENAPI_TEXT ? "org.updated, org.deleted, org.exported, event.replayed, outbox.replayed" : undefined,
								example: "org.deleted",
							}),
							organizationId: z.string().nullable(),
							targetId: z.string().nullable().openapi({ description: OPENAPI_TEXT ? "The replayed event's svixId or outbox row's id" : undefined }),
							detail: z.unknown().openapi({ description: OPENAPI_TEXT ? "What the request asked (an override's fields); null when nothing" : undefined }),
							status: z.number().int(),
							requestId: z.string(),
						}),
					),
					nextCursor: z.string().nullable(),
				})
				.openapi("OperatorActionsPage"),
			"A page of operator actions",
		),
		...operatorErrors,
	},
});
