import { createRouter } from "../../app";
import { replayEvent } from "../../services/events-log";
import * as routes from "./admin.routes";

export const adminRouter = createRouter().openapi(routes.replayEvent, async (c) => {
	const { svixId } = c.req.valid("param");
	await replayEvent(c.get("db"), c.env.WEBHOOK_QUEUE, svixId);
	c.get("logger").info("event replay queued", { svixId, operator: c.get("auth").userId });
	return c.json({ status: "queued" as const, svixId }, 202);
});
