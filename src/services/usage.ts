import type { Env } from "../env";

/**
 * The organization's API usage this month against its quota, read from its UsageCounter object:
 * the calendar month (UTC) as the period, the daily counts, what remains and the percentage used.
 */
export async function usageReport(env: Pick<Env, "USAGE">, organizationId: string, quota: number) {
	const stub = env.USAGE.get(env.USAGE.idFromName(`usage:${organizationId}`));
	const summary = await stub.summary();
	const [y, m] = summary.month.split("-").map(Number) as [number, number];
	return {
		organizationId,
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
	};
}
