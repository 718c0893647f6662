import type { Context } from "hono";
import { createdLocation, createRouter } from "../../lib/create-app";
import type { AppEnv } from "../../env";
import { withChangeLog } from "../../middleware/change-log";
import {
	createEndpoint,
	deleteEndpoint,
	getEndpoint,
	listDeliveries,
	listEndpoints,
	replayEndpointDelivery,
	updateEndpoint,
} from "../../services/endpoints";
import { publish } from "../../services/events-bus";
import { deliveryView, endpointView } from "../../services/views";
import * as routes from "./endpoints.routes";

const view = endpointView;

const orgId = (c: Context<AppEnv>) => c.get("access").organization.id;

// Each change writes its `webhook_endpoint.<action>` audit entry in its own batch (the directory's
// shared tables, or the tenant's store); withChangeLog relays it once it committed.
export const endpointsRouter = createRouter()
	.openapi(routes.createEndpoint, async (c) => {
		const row = await withChangeLog(c, (log) => createEndpoint(c.get("db"), orgId(c), c.req.valid("json"), log));
		return c.json({ ...view(row), secret: row.secret }, 201, createdLocation(c, row.id));
	})
	.openapi(routes.listEndpoints, async (c) => c.json({ data: (await listEndpoints(c.get("db"), orgId(c))).map(view) }, 200))
	.openapi(routes.getEndpoint, async (c) =>
		c.json(view(await getEndpoint(c.get("db"), orgId(c), c.req.valid("param").endpointId)), 200),
	)
	.openapi(routes.updateEndpoint, async (c) => {
		const { endpointId } = c.req.valid("param");
		const { after } = await withChangeLog(c, (log) => updateEndpoint(c.get("db"), orgId(c), endpointId, c.req.valid("json"), log));
		return c.json(view(after), 200);
	})
	.openapi(routes.deleteEndpoint, async (c) => {
		const { endpointId } = c.req.valid("param");
		await withChangeLog(c, (log) => deleteEndpoint(c.get("db"), orgId(c), endpointId, log));
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
		// Not through withChangeLog: in a tenant store a delivery leaves through the store's outbox and
		// alarm (publish applies it there), which a local relay would skip.
		await publish(c.env, [message], c.get("logger"));
		return c.json({ status: "queued" as const, deliveryId: message.deliveryId }, 202);
	});
