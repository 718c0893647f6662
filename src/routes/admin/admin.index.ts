import { eq } from "drizzle-orm";
import { createRouter } from "../../lib/create-app";
import { events } from "../../db/schema";
import { ApiError } from "../../errors";
import type { WebhookMessage } from "../../queue/messages";
import * as routes from "./admin.routes";

export const adminRouter = createRouter().openapi(routes.replayEvent, async (c) => {
	const { svixId } = c.req.valid("param");
	const db = c.get("db");
	const [row] = await db.select().from(events).where(eq(events.svixId, svixId));
	if (!row) throw new ApiError("NOT_FOUND", "no event with that svix id");
	const message: WebhookMessage = {
		source: row.source as WebhookMessage["source"],
		svixId: row.svixId,
		type: row.type,
		timestamp: row.eventTimestamp,
		receivedAt: row.receivedAt,
		body: row.payload,
		replay: true,
	};
	try {
		await c.env.WEBHOOK_QUEUE.send(message, { contentType: "json" });
	} catch {
		throw new ApiError("UPSTREAM_UNAVAILABLE", "event could not be queued, retry later");
	}
	await db.update(events).set({ outcome: "queued", error: null }).where(eq(events.svixId, svixId));
	c.get("logger").info("event replay queued", { svixId, operator: c.get("auth").userId });
	return c.json({ status: "queued" as const, svixId }, 202);
});
