import { createRoute, z } from "@hono/zod-openapi";
import { requireAuth } from "../../middleware/auth";
import { requireOperator } from "../../middleware/authorize";
import { rateLimit } from "../../middleware/rate-limit";
import { authErrors, jsonContent, problem } from "../../openapi";

export const replayEvent = createRoute({
	method: "post",
	path: "/api/admin/events/{svixId}/replay",
	tags: ["admin"],
	summary: "Re-queue a stored webhook event (operators only)",
	description: "Operators are the user ids listed in OPERATOR_USER_IDS, signed in with a valid session token.",
	security: [{ bearer: [] }],
	middleware: [requireAuth(), requireOperator(), rateLimit("user")],
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
