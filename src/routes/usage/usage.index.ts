import { createRouter } from "../../app";
import { usageReport } from "../../services/usage";
import * as routes from "./usage.routes";

export const usageRouter = createRouter().openapi(routes.getUsage, async (c) => {
	const { organization, limits } = c.get("access");
	return c.json(await usageReport(c.env, organization.id, limits.monthlyApiQuota), 200);
});
