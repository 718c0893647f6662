import { and, desc, eq, lt, or } from "drizzle-orm";
import type { Context } from "hono";
import { createRouter } from "../../lib/create-app";
import { webhookDeliveries, webhookEndpoints } from "../../db/schema";
import type { AppEnv } from "../../env";
import { ApiError } from "../../errors";
import { decodeCursor, page } from "../../lib/cursor";
import { newId } from "../../lib/ids";
import { publish, publishChange } from "../../services/events-bus";
import { newEndpointSecret, refuseUrl, replayDelivery } from "../../services/outgoing-webhooks";
import { requestMeta } from "../../middleware/request-meta";
import * as routes from "./endpoints.routes";

type Endpoint = typeof webhookEndpoints.$inferSelect;
const view = (e: Endpoint) => ({
	id: e.id,
	url: e.url,
	eventTypes: JSON.parse(e.eventTypes) as string[],
	status: e.status,
	consecutiveFailures: e.consecutiveFailures,
	disabledReason: e.disabledReason,
	createdAt: e.createdAt,
	updatedAt: e.updatedAt,
});

function checkUrl(url: string) {
	const reason = refuseUrl(url);
	if (reason) throw new ApiError("VALIDATION_FAILED", `url: ${reason}`, { errors: [{ path: "url", message: reason }] });
}

async function load(c: Context<AppEnv>, endpointId: string): Promise<Endpoint> {
	const [row] = await c
		.get("db")
		.select()
		.from(webhookEndpoints)
		.where(and(eq(webhookEndpoints.organizationId, c.get("access").organization.id), eq(webhookEndpoints.id, endpointId)));
	if (!row) throw new ApiError("NOT_FOUND", "webhook endpoint not found");
	return row;
}

export const endpointsRouter = createRouter()
	.openapi(routes.createEndpoint, async (c) => {
		const { url, eventTypes } = c.req.valid("json");
		checkUrl(url);
		const orgId = c.get("access").organization.id;
		const now = Date.now();
		const [row] = await c
			.get("db")
			.insert(webhookEndpoints)
			.values({
				id: newId("whe"),
				organizationId: orgId,
				url,
				eventTypes: JSON.stringify([...new Set(eventTypes)]),
				secret: newEndpointSecret(),
				status: "enabled",
				createdAt: now,
				updatedAt: now,
			})
			.returning();
		await publishChange(c.env, requestMeta(c), c.get("logger"), {
			organizationId: orgId,
			action: "webhook_endpoint.created",
			targetType: "webhook_endpoint",
			targetId: row!.id,
			after: view(row!),
		});
		return c.json({ ...view(row!), secret: row!.secret }, 201);
	})
	.openapi(routes.listEndpoints, async (c) => {
		const rows = await c
			.get("db")
			.select()
			.from(webhookEndpoints)
			.where(eq(webhookEndpoints.organizationId, c.get("access").organization.id))
			.orderBy(webhookEndpoints.createdAt);
		return c.json({ data: rows.map(view) }, 200);
	})
	.openapi(routes.getEndpoint, async (c) => c.json(view(await load(c, c.req.valid("param").endpointId)), 200))
	.openapi(routes.updateEndpoint, async (c) => {
		const { endpointId } = c.req.valid("param");
		const patch = c.req.valid("json");
		const before = await load(c, endpointId);
		if (patch.url) checkUrl(patch.url);
		const [row] = await c
			.get("db")
			.update(webhookEndpoints)
			.set({
				...(patch.url ? { url: patch.url } : {}),
				...(patch.eventTypes ? { eventTypes: JSON.stringify([...new Set(patch.eventTypes)]) } : {}),
				...(patch.status
					? { status: patch.status, ...(patch.status === "enabled" ? { consecutiveFailures: 0, disabledReason: null } : {}) }
					: {}),
				updatedAt: Date.now(),
			})
			.where(and(eq(webhookEndpoints.organizationId, before.organizationId), eq(webhookEndpoints.id, endpointId)))
			.returning();
		await publishChange(c.env, requestMeta(c), c.get("logger"), {
			organizationId: before.organizationId,
			action: "webhook_endpoint.updated",
			targetType: "webhook_endpoint",
			targetId: endpointId,
			before: view(before),
			after: view(row!),
		});
		return c.json(view(row!), 200);
	})
	.openapi(routes.deleteEndpoint, async (c) => {
		const { endpointId } = c.req.valid("param");
		const before = await load(c, endpointId);
		await c
			.get("db")
			.delete(webhookEndpoints)
			.where(and(eq(webhookEndpoints.organizationId, before.organizationId), eq(webhookEndpoints.id, endpointId)));
		await publishChange(c.env, requestMeta(c), c.get("logger"), {
			organizationId: before.organizationId,
			action: "webhook_endpoint.deleted",
			targetType: "webhook_endpoint",
			targetId: endpointId,
			before: view(before),
		});
		return c.body(null, 204);
	})
	.openapi(routes.listDeliveries, async (c) => {
		const { endpointId } = c.req.valid("param");
		const endpoint = await load(c, endpointId);
		const { cursor, limit } = c.req.valid("query");
		const before = decodeCursor(cursor);
		const rows = await c
			.get("db")
			.select()
			.from(webhookDeliveries)
			.where(
				and(
					eq(webhookDeliveries.organizationId, endpoint.organizationId),
					eq(webhookDeliveries.endpointId, endpointId),
					before
						? or(
								lt(webhookDeliveries.createdAt, before.k),
								and(eq(webhookDeliveries.createdAt, before.k), lt(webhookDeliveries.id, before.id)),
							)
						: undefined,
				),
			)
			.orderBy(desc(webhookDeliveries.createdAt), desc(webhookDeliveries.id))
			.limit(limit + 1);
		const p = page(rows, limit, (r) => ({ k: r.createdAt, id: r.id }));
		return c.json(
			{ data: p.data.map(({ organizationId: _o, endpointId: _e, payload: _p, ...d }) => d), nextCursor: p.nextCursor },
			200,
		);
	})
	.openapi(routes.replayDeliveryRoute, async (c) => {
		const { endpointId, deliveryId } = c.req.valid("param");
		const endpoint = await load(c, endpointId);
		if (endpoint.status !== "enabled") throw new ApiError("CONFLICT", "the endpoint is disabled; enable it first");
		const message = await replayDelivery(c.get("db"), endpoint.organizationId, endpointId, deliveryId);
		if (!message) throw new ApiError("NOT_FOUND", "delivery not found");
		await publish(c.env, [message], c.get("logger"));
		return c.json({ status: "queued" as const, deliveryId: message.deliveryId }, 202);
	});
