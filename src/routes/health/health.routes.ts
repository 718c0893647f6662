import { createRoute, z } from "@hono/zod-openapi";
import { rateLimit } from "../../middleware/rate-limit";
import { commonErrors, jsonContent, problem } from "../../openapi";

export const HealthResponse = z
	.object({
		status: z.literal("ok"),
	})
	.openapi("Health");

export const health = createRoute({
	method: "get",
	path: "/api/health",
	tags: ["system"],
	summary: OPENAPI_TEXT ? "Liveness check" : undefined,
	description: OPENAPI_TEXT ? "Answers whenever the Worker runs, whatever its configuration (see /api/health/ready)." : undefined,
	middleware: [rateLimit("public")],
	responses: { 200: jsonContent(HealthResponse, "Service is up"), ...commonErrors },
});

export const ready = createRoute({
	method: "get",
	path: "/api/health/ready",
	tags: ["system"],
	summary: OPENAPI_TEXT ? "Readiness check" : undefined,
	description:
		OPENAPI_TEXT ? "200 when the configuration is valid; otherwise 503 problem+json whose `errors` name each misconfigured or missing variable (never its value)." : undefined,
	middleware: [rateLimit("public")],
	responses: {
		200: jsonContent(z.object({ status: z.literal("ok") }).openapi("Ready"), "Configuration is valid"),
		...commonErrors,
		503: problem("Misconfigured or missing variables, listed by name in `errors`"),
	},
});
