import type { Env } from "../env";
import { storeCall, storeRoute } from "../tenant-store/directory";

/** The organization's UsageCounter object: one per organization, the same name for the meter and the report. */
export const usageCounter = (env: Pick<Env, "USAGE">, organizationId: string) =>
	env.USAGE.get(env.USAGE.idFromName(`usage:${organizationId}`));

/**
 * The organization's API usage this month against its quota, read from its tenant store (or, for a
 * tenant still on the shared tables, its UsageCounter object): the calendar month (UTC) as the period,
 * the daily counts, what remains and the percentage used.
 */
export async function usageReport(env: Pick<Env, "USAGE" | "DB" | "TENANT_STORE">, organizationId: string, quota: number) {
	const route = await storeRoute(env, organizationId);
	const summary =
		route.state === "store"
			? await storeCall(env, organizationId, route, (s) => s.usageSummary())
			: await usageCounter(env, organizationId).summary();
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
