import { createRouter } from "../../lib/create-app";
import * as routes from "./usage.routes";

export const usageRouter = createRouter().openapi(routes.getUsage, async (c) => {
	const { organization, limits } = c.get("access");
	const stub = c.env.USAGE.get(c.env.USAGE.idFromName(`usage:${organization.id}`));
	const summary = await stub.summary();
	const [y, m] = summary.month.split("-").map(Number) as [number, number];
	const quota = limits.monthlyApiQuota;
	return c.json(
		{
			organizationId: organization.id,
			metric: "api_calls" as const,
			period: {
				month: summary.month,
				start: new Date(Date.UTC(y, m - 1, 1)).toISOString(),
				end: new Date(Date.UTC(y, m, 1)).toISOString(),
			},
			used: summary.used,
			quota,
			remaining: Math.max(0, quota - summary.used),
			percent: quota > 0 ? Math.round((summary.used / quota) * 10_000) / 100 : 0,
			daily: summary.daily,
		},
		200,
	);
});
