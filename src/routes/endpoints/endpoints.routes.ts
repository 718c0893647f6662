import { createRoute, z } from "@hono/zod-openapi";
import { requireFeature, requirePermission } from "../../middleware/authorize";
import { tenantMiddleware } from "../../middleware/tenant";
import { CursorQuery, jsonContent, orgErrors, problem } from "../../openapi";
import { MAX_ENDPOINTS } from "../../services/endpoints";
import { TENANT_EVENT_TYPES } from "../../services/outgoing-webhooks";

const middleware = tenantMiddleware(requirePermission("org:webhooks:manage"), requireFeature("outgoing_webhooks"));
const errors = { ...orgErrors, 402: problem("The plan does not include outgoing webhooks"), 409: problem("Conflict") };
const param = (name: string) =>
	z
		.string()
		.min(1)
		.max(128)
		.openapi({ param: { name, in: "path" } });
const OrgParam = { orgId: param("orgId") };
const EndpointParams = z.object({ ...OrgParam, endpointId: param("endpointId") });

const eventTypes = z
	.array(z.enum(["*", ...TENANT_EVENT_TYPES]))
	.min(1)
	.max(20)
	.openapi({ description: OPENAPI_TEXT ? `Subscribed types, or ["*"]: ${TENANT_EVENT_TYPES.join(", ")}` : undefined });
const url = z.string().max(2048).openapi({ example: "https://hooks.example.com/tenant-events" });

const EndpointSchema = z
	.object({
		id: z.string(),
		url: z.string(),
		eventTypes: z.array(z.string()),
		status: z.enum(["enabled", "disabled"]),
		consecutiveFailures: z.number().int(),
		failingSince: z
			.number()
			.int()
			.nullable()
			.openapi({ description: OPENAPI_TEXT ? "When the current run of failed attempts began (ms); null after a success" : undefined }),
		disabledReason: z.string().nullable(),
		createdAt: z.number().int(),
		updatedAt: z.number().int(),
	})
	.openapi("WebhookEndpoint");
const EndpointCreatedSchema = EndpointSchema.extend({
	secret: z.string().openapi({ description: OPENAPI_TEXT ? "Signing secret (whsec_…); shown only in this response" : undefined }),
}).openapi("WebhookEndpointCreated");
const DeliverySchema = z
	.object({
		id: z.string(),
		eventId: z.string(),
		eventType: z.string(),
		status: z.enum(["pending", "retrying", "succeeded", "failed"]),
		attempts: z.number().int(),
		lastStatusCode: z.number().int().nullable(),
		lastError: z.string().nullable(),
		nextAttemptAt: z.number().int().nullable(),
		createdAt: z.number().int(),
		updatedAt: z.number().int(),
	})
	.openapi("WebhookDelivery");

const json = <T extends z.ZodType>(schema: T) => ({ required: true, content: { "application/json": { schema } } });

export const createEndpoint = createRoute({
	method: "post",
	path: "/api/orgs/{orgId}/webhooks",
	tags: ["webhooks (outgoing)"],
	summary: OPENAPI_TEXT ? "Register an endpoint; the signing secret is returned once" : undefined,
	description: OPENAPI_TEXT ? `At most ${MAX_ENDPOINTS} endpoints per organization (every event is delivered to each): 409 past them.` : undefined,
	security: [{ bearer: [] }],
	middleware,
	request: { params: z.object(OrgParam), body: json(z.strictObject({ url, eventTypes })) },
	responses: { 201: jsonContent(EndpointCreatedSchema, "Registered"), ...errors },
});
export const listEndpoints = createRoute({
	method: "get",
	path: "/api/orgs/{orgId}/webhooks",
	tags: ["webhooks (outgoing)"],
	summary: OPENAPI_TEXT ? "List endpoints" : undefined,
	security: [{ bearer: [] }],
	middleware,
	request: { params: z.object(OrgParam) },
	responses: {
		200: jsonContent(z.object({ data: z.array(EndpointSchema) }).openapi("WebhookEndpointList"), "Endpoints"),
		...errors,
	},
});
export const getEndpoint = createRoute({
	method: "get",
	path: "/api/orgs/{orgId}/webhooks/{endpointId}",
	tags: ["webhooks (outgoing)"],
	summary: OPENAPI_TEXT ? "Get an endpoint" : undefined,
	security: [{ bearer: [] }],
	middleware,
	request: { params: EndpointParams },
	responses: { 200: jsonContent(EndpointSchema, "The endpoint"), ...errors },
});
export const updateEndpoint = createRoute({
	method: "patch",
	path: "/api/orgs/{orgId}/webhooks/{endpointId}",
	tags: ["webhooks (outgoing)"],
	summary: OPENAPI_TEXT ? "Change url or event types, or re-enable (status: enabled) a disabled endpoint" : undefined,
	security: [{ bearer: [] }],
	middleware,
	request: {
		params: EndpointParams,
		body: json(
			z
				.strictObject({
					url: url.optional(),
					eventTypes: eventTypes.optional(),
					status: z.enum(["enabled", "disabled"]).optional(),
				})
				.refine((v) => Object.keys(v).length > 0, "at least one field is required"),
		),
	},
	responses: { 200: jsonContent(EndpointSchema, "Updated"), ...errors },
});
export const deleteEndpoint = createRoute({
	method: "delete",
	path: "/api/orgs/{orgId}/webhooks/{endpointId}",
	tags: ["webhooks (outgoing)"],
	summary: OPENAPI_TEXT ? "Delete an endpoint" : undefined,
	security: [{ bearer: [] }],
	middleware,
	request: { params: EndpointParams },
	responses: { 204: { description: OPENAPI_TEXT ? "Deleted" : undefined }, ...errors },
});
export const listDeliveries = createRoute({
	method: "get",
	path: "/api/orgs/{orgId}/webhooks/{endpointId}/deliveries",
	tags: ["webhooks (outgoing)"],
	summary: OPENAPI_TEXT ? "The endpoint's delivery log, newest first" : undefined,
	security: [{ bearer: [] }],
	middleware,
	request: { params: EndpointParams, query: CursorQuery },
	responses: {
		200: jsonContent(
			z.object({ data: z.array(DeliverySchema), nextCursor: z.string().nullable() }).openapi("WebhookDeliveryPage"),
			"Deliveries",
		),
		...errors,
	},
});
export const replayDeliveryRoute = createRoute({
	method: "post",
	path: "/api/orgs/{orgId}/webhooks/{endpointId}/deliveries/{deliveryId}/replay",
	tags: ["webhooks (outgoing)"],
	summary: OPENAPI_TEXT ? "Send a delivery's event again (same webhook-id) as a new delivery" : undefined,
	security: [{ bearer: [] }],
	middleware,
	request: { params: EndpointParams.extend({ deliveryId: param("deliveryId") }) },
	responses: {
		202: jsonContent(z.object({ status: z.literal("queued"), deliveryId: z.string() }).openapi("ReplayQueued"), "Queued"),
		...errors,
	},
});
