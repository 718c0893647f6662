/** Plan catalogue: entitlements and limits per plan. Organizations may override rate limits in D1. */
export const PLAN_IDS = ["free", "pro", "enterprise"] as const;
export type PlanId = (typeof PLAN_IDS)[number];

export interface PlanLimits {
	/** Requests per minute for the whole organization. */
	requestsPerMinute: number;
	/** Requests per minute for one user within the organization. */
	userRequestsPerMinute: number;
}

export const PLANS: Record<PlanId, { name: string; limits: PlanLimits }> = {
	free: { name: "Free", limits: { requestsPerMinute: 120, userRequestsPerMinute: 60 } },
	pro: { name: "Pro", limits: { requestsPerMinute: 1_200, userRequestsPerMinute: 300 } },
	enterprise: { name: "Enterprise", limits: { requestsPerMinute: 12_000, userRequestsPerMinute: 2_000 } },
};

export function planOf(plan: string | null | undefined): PlanId {
	return (PLAN_IDS as readonly string[]).includes(plan ?? "") ? (plan as PlanId) : "free";
}

export function limitsFor(
	plan: string | null | undefined,
	overrides: { rateLimitPerMinute?: number | null; userRateLimitPerMinute?: number | null } = {},
): PlanLimits {
	const base = PLANS[planOf(plan)].limits;
	return {
		requestsPerMinute: overrides.rateLimitPerMinute ?? base.requestsPerMinute,
		userRequestsPerMinute: overrides.userRateLimitPerMinute ?? base.userRequestsPerMinute,
	};
}

/** Budget per client IP for unauthenticated public routes (health, provider webhooks). */
export const PUBLIC_REQUESTS_PER_MINUTE = 600;
/** Budget per user for authenticated routes outside an organization (/api/me, operator routes). */
export const USER_REQUESTS_PER_MINUTE = 600;
