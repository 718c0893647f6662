import { misconfigured, missingRequired } from "../../env";
import { ApiError } from "../../errors";
import { createRouter } from "../../lib/create-app";
import * as routes from "./health.routes";

export const healthRouter = createRouter()
	.openapi(routes.health, (c) => c.json({ status: "ok" as const }, 200))
	.openapi(routes.ready, (c) => {
		const invalid = misconfigured(c.env);
		const missing = missingRequired(c.get("config")).filter((n) => !invalid.includes(n));
		if (invalid.length > 0 || missing.length > 0) {
			throw new ApiError("NOT_READY", `service configuration is incomplete: ${[...invalid, ...missing].join(", ")}`, {
				errors: [
					...invalid.map((path) => ({ path, message: "invalid value" })),
					...missing.map((path) => ({ path, message: "required, not set" })),
				],
			});
		}
		return c.json({ status: "ok" as const }, 200);
	});
