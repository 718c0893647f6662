import { z } from "@hono/zod-openapi";

export const ProblemSchema = z
	.object({
		type: z.string().openapi({ example: "https://errors.edge-tenant.dev/forbidden" }),
		title: z.string().openapi({ example: "Forbidden" }),
		status: z.number().int().openapi({ example: 403 }),
		detail: z.string().openapi({ example: "missing permission org:members:read" }),
		requestId: z.string().openapi({ example: "6f1c2c0e-4f6d-4d7e-9d55-2f2b8b9b7c11" }),
		code: z.string().openapi({ example: "FORBIDDEN" }),
		errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
	})
	.openapi("Problem");

const problem = (description: string) => ({
	description,
	content: { "application/problem+json": { schema: ProblemSchema } },
});

/** Error responses every route can produce, spread into each createRoute's responses. */
export const commonErrors = {
	400: problem("Bad request or validation failure"),
	429: problem("Rate limited (Retry-After and RateLimit-* headers)"),
	500: problem("Internal error"),
} as const;

export const authErrors = {
	...commonErrors,
	401: problem("Missing or invalid session token (WWW-Authenticate)"),
	503: problem("Session keys temporarily unavailable"),
} as const;

export const orgErrors = {
	...authErrors,
	402: problem("The caller's seat is beyond the plan's seats (admins first, then by join order)"),
	403: problem("Not a member, or missing permission/role"),
	404: problem("Unknown organization"),
} as const;

export const jsonContent = <T extends z.ZodType>(schema: T, description: string) => ({
	description,
	content: { "application/json": { schema } },
});

export const OrgIdParam = z.object({
	orgId: z
		.string()
		.min(1)
		.max(128)
		.openapi({ param: { name: "orgId", in: "path" }, example: "org_2abc" }),
});

export const CursorQuery = z.object({
	cursor: z.string().max(512).optional().openapi({ description: "Opaque cursor from nextCursor" }),
	limit: z.coerce.number().int().min(1).max(100).default(20),
});

export { problem };
