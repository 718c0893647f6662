import { createRoute, z } from "@hono/zod-openapi";
import { requireAuth } from "../../middleware/auth";
import { rateLimit } from "../../middleware/rate-limit";
import { authErrors, jsonContent } from "../../openapi";

const SessionMe = z
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
	.openapi("MeSession", { description: OPENAPI_TEXT ? "A Clerk session token: the user and their active organization" : undefined });

const ApiKeyMe = z
	.object({
		user: z.null(),
		apiKey: z.object({
			id: z.string(),
			name: z.string(),
			prefix: z.string().openapi({ example: "sk_live_" }),
			last4: z.string(),
			expiresAt: z.number().int().nullable(),
		}),
		organization: z
			.object({
				id: z.string(),
				slug: z.string().nullable(),
				role: z.null().openapi({ description: OPENAPI_TEXT ? "An API key has no role, only its own permissions" : undefined }),
				permissions: z.array(z.string()),
			})
			.nullable()
			.openapi({ description: OPENAPI_TEXT ? "The key's organization; null once it is deleted" : undefined }),
	})
	.openapi("MeApiKey", { description: OPENAPI_TEXT ? "A tenant API key (principal apikey:<id>): the key, its organization and permissions" : undefined });

export const MeResponse = z.union([SessionMe, ApiKeyMe]).openapi("Me");

export const me = createRoute({
	method: "get",
	path: "/api/me",
	tags: ["identity"],
	summary: OPENAPI_TEXT ? "The caller: the user and their active organization, or the API key and its organization" : undefined,
	security: [{ bearer: [] }],
	middleware: [requireAuth(), rateLimit("user")],
	responses: { 200: jsonContent(MeResponse, "The signed-in user (MeSession) or the API key (MeApiKey)"), ...authErrors },
});
