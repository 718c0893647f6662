import { createRoute, z } from "@hono/zod-openapi";
import { rateLimit } from "../../middleware/rate-limit";
import { commonErrors, jsonContent } from "../../openapi";

export const HealthResponse = z.object({ status: z.literal("ok") }).openapi("Health");

export const health = createRoute({
	method: "get",
	path: "/api/health",
	tags: ["system"],
	summary: "Liveness check",
	middleware: [rateLimit("public")],
	responses: { 200: jsonContent(HealthResponse, "Service is up"), ...commonErrors },
});
