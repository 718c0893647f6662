import { createRoute, z } from "@hono/zod-openapi";
import { requireAuth } from "../../middleware/auth";
import { rateLimit } from "../../middleware/rate-limit";
import { authErrors, CursorQuery, jsonContent } from "../../openapi";

const MyOrganization = z
	.object({
		id: z.string(),
		slug: z.string().nullable(),
		name: z.string().nullable(),
		role: z.string().openapi({ description: OPENAPI_TEXT ? "The caller's role in this organization" : undefined }),
	})
	.openapi("MyOrganization");

export const myOrganizations = createRoute({
	method: "get",
	path: "/api/me/organizations",
	tags: ["identity"],
	summary: OPENAPI_TEXT ? "Every organization the caller belongs to, with their role, in the order they joined" : undefined,
	security: [{ bearer: [] }],
	middleware: [requireAuth(), rateLimit("user")],
	request: { query: CursorQuery },
	responses: {
		200: jsonContent(
			z.object({ data: z.array(MyOrganization), nextCursor: z.string().nullable() }).openapi("MyOrganizationPage"),
			"A page of the caller's organizations",
		),
		...authErrors,
	},
});
