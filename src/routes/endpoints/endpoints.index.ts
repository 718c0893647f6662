import type { Context } from "hono";
import { createdLocation, createRouter } from "../../lib/create-app";
import type { AppEnv } from "../../env";
import { requestMeta } from "../../middleware/request-meta";
import {
	createEndpoint,
	deleteEndpoint,
	getEndpoint,
	listDeliveries,
	listEndpoints,
	replayEndpointDelivery,
	updateEndpoint,
} from "../../services/endpoints";
import { type AuditInput, publish, publishChange } from "../../services/events-bus";
import { deliveryView, endpointView } from "../../services/views";
import * as routes from "./endpoints.routes";

const view = endpointView;

const orgId = (c: Context<AppEnv>) => c.get("access").organization.id;
/** Audit entry for a committed change of an endpoint. */
const audit = (c: Context<AppEnv>, action: string, targetId: string, change: Pick<AuditInput, "before" | "after">) =>
	publishChange(c.env, requestMeta(c), c.get("logger"), {
		organizationId: orgId(c),
		action: `webhook_endpoint.${action}`,
		targetType: "webhook_endpoint",
		targetId,
		...change,
	});

export const endpointsRouter = createRouter()
	.openapi(routes.createEndpoint, async (c) => {
		const row = await createEndpoint(c.get("db"), orgId(c), c.req.valid("json"));
		await audit(c, "created", row.id, { after: view(row) });
		return c.json({ ...view(row), secret: row.secret }, 201, createdLocation(c, row.id));
	})
	.openapi(routes.listEndpoints, async (c) => c.json({ data: (await listEndpoints(c.get("db"), orgId(c))).map(view) }, 200))
	.openapi(routes.getEndpoint, async (c) =>
		c.json(view(await getEndpoint(c.get("db"), orgId(c), c.req.valid("param").endpointId)), 200),
	)
	.openapi(routes.updateEndpoint, async (c) => {
		const { endpointId } = c.req.valid("param");
		const { before, after } = await updateEndpoint(c.get("db"), orgId(c), endpointId, c.req.valid("json"));
		await audit(c, "updated", endpointId, { before: view(before), after: view(after) });
		return c.json(view(after), 200);
	})
	.openapi(routes.deleteEndpoint, async (c) => {
		const { endpointId } = c.req.valid("param");
		const before = await deleteEndpoint(c.get("db"), orgId(c), endpointId);
		await audit(c, "deleted", endpointId, { before: view(before) });
		return c.body(null, 204);
	})
	.openapi(routes.listDeliveries, async (c) => {
		const p = await listDeliveries(c.get("db"), orgId(c), c.req.valid("param").endpointId, c.req.valid("query"));
		return c.json(
			{ data: p.data.map(deliveryView), nextCursor: p.nextCursor },
			200,
		);
	})
	.openapi(routes.replayDeliveryRoute, async (c) => {
		const { endpointId, deliveryId } = c.req.valid("param");
		const message = await replayEndpointDelivery(c.get("db"), orgId(c), endpointId, deliveryId);
		await publish(c.env, [message], c.get("logger"));
		return c.json({ status: "queued" as const, deliveryId: message.deliveryId }, 202);
	});
