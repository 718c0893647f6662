import { createRoute, z } from "@hono/zod-openapi";
import { requireAuth } from "../../middleware/auth";
import { rateLimit } from "../../middleware/rate-limit";
import { authErrors, jsonContent } from "../../openapi";

export const MeResponse = z
	.object({
		user: z.object({
			id: z.string(),
			email: z.string().nullable(),
			firstName: z.string().nullable(),
			lastName: z.string().nullable(),
		}),
		organization: z
			.object({
				id: z.string(),
				slug: z.string().nullable(),
				role: z.string(),
				permissions: z.array(z.string()),
			})
			.nullable(),
	})
	.openapi("Me");

export const me = createRoute({
	method: "get",
	path: "/api/me",
	tags: ["identity"],
	summary: "The caller and their active organization",
	security: [{ bearer: [] }],
	middleware: [requireAuth(), rateLimit("user")],
	responses: { 200: jsonContent(MeResponse, "The signed-in user"), ...authErrors },
});
