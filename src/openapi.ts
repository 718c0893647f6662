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

/**
 * HTTP-level refusals: a known path with another method answers 405 with `Allow`; a body that is not
 * JSON on a route that takes JSON answers 415. Part of commonErrors; the document adds 415 to every
 * operation with a JSON request body (see withHttpErrors).
 */
const httpErrors = {
	405: problem("Method not allowed on this path (the Allow header lists the methods it serves)"),
} as const;


/** Error responses every route can produce, spread into each createRoute's responses. */
export const commonErrors = {
	400: problem("Bad request or validation failure"),
	...httpErrors,
	429: problem("Rate limited (Retry-After and RateLimit-* headers)"),
	500: problem("Internal error"),
} as const;

/** For routes that take a JSON body, next to commonErrors: 415. */
export const jsonBodyErrors = {
	415: problem("Unsupported media type: send the body as application/json"),
} as const;

interface DocOperation {
	requestBody?: { content?: Record<string, unknown> };
	responses?: Record<string, unknown>;
}

/**
 * The generated document with the HTTP-level refusals on every operation: 405 everywhere, 415 where
 * the request body is JSON (routes that spread commonErrors / jsonBodyErrors already have them).
 */
export function withHttpErrors<D extends { paths?: unknown }>(doc: D): D {
	const paths = (doc.paths ?? {}) as Record<string, Record<string, DocOperation>>;
	for (const ops of Object.values(paths)) {
		for (const op of Object.values(ops)) {
			if (typeof op !== "object" || op === null || !op.responses) continue;
			op.responses["405"] ??= httpErrors[405];
			const media = Object.keys(op.requestBody?.content ?? {});
			if (media.some((m) => /json/i.test(m))) op.responses["415"] ??= jsonBodyErrors[415];
		}
	}
	return doc;
}

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
