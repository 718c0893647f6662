import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { usageCounter } from "../services/usage";
import { monthOf, monthStart } from "../services/usage-ledger";
import type { AddResult } from "../services/usage-types";
import { storeCall, storeRoute } from "../tenant-store/directory";

/** An isolate sends its counted calls to the organization's UsageCounter at most this often… */
export const METER_FLUSH_MS = 1_000;
/** …or once this many are pending, and on every call once 80% of the quota is used. */
export const METER_FLUSH_COUNT = 20;

interface Local {
	month: string;
	/** Month total as last reported by the Durable Object. */
	used: number;
	pending: number;
	lastFlush: number;
	known: boolean;
}

// Per organization, in this isolate: calls not yet sent to the counter object. Losing them (isolate
// eviction) under-counts by at most METER_FLUSH_COUNT calls per isolate; it never blocks a request.
const local = new Map<string, Local>();

/** The meter's clock (ms since the epoch); tests move it with setMeterClock instead of sleeping. */
let clock: () => number = () => Date.now();

/** Test hook: forget the pending counts and go back to the real clock. */
export function resetMeterState(): void {
	local.clear();
	clock = () => Date.now();
}

/** Test hook: the meter reads the time from `now` (e.g. to step past METER_FLUSH_MS without waiting). */
export function setMeterClock(now: () => number): void {
	clock = now;
}

const secondsToNextMonth = (now: number) => Math.ceil((monthStart(monthOf(now), 1) - now) / 1000);

function quotaExceeded(quota: number, now: number): ApiError {
	return new ApiError("QUOTA_EXCEEDED", `the monthly quota of ${quota} API calls is used up`, {
		headers: { "Retry-After": String(secondsToNextMonth(now)) },
	});
}

/**
 * Meters API calls per organization and enforces the monthly quota (plan, or the organization's
 * override): over quota answers 429 problem+json (code QUOTA_EXCEEDED) with Retry-After until the
 * next month (UTC). A store tenant's calls are counted by its tenant store, exactly: in the object for
 * the routes it serves (no call), one call to it for the tenant routes the Worker serves. A tenant
 * still on the shared tables is counted by its UsageCounter object, in batches (see `legacyMeter`).
 * Both write daily rollups behind to D1 and raise the 50/80/100% alerts: no D1 write per request.
 * @example middleware: [requireAuth(), requireOrgMember(), rateLimit("tenant"), meter()]
 */
export function meter() {
	return createMiddleware<AppEnv>(async (c, next) => {
		const { organization, limits } = c.get("access");
		const quota = limits.monthlyApiQuota;
		const now = clock();
		const store = c.get("store");
		const route = store ? undefined : await storeRoute(c.env, organization.id);
		if (store || route?.state === "store") {
			const result = store
				? await store.usage(organization.id, 1, quota, now)
				: await storeCall(c.env, organization.id, route!, (s) => s.meter(organization.id, { quota, at: now }));
			if (!result.allowed) throw quotaExceeded(quota, now);
			return next();
		}
		await legacyMeter(c, organization.id, quota, now);
		await next();
	});
}

/**
 * A tenant on the shared tables: calls are batched in the isolate and added to the UsageCounter
 * object at most every METER_FLUSH_MS or METER_FLUSH_COUNT calls, and on every call near the quota.
 */
async function legacyMeter(c: Context<AppEnv>, organizationId: string, quota: number, now: number): Promise<void> {
	const month = monthOf(now);
	let s = local.get(organizationId);
	if (!s || s.month !== month) {
		s = { month, used: 0, pending: 0, lastFlush: 0, known: false };
		local.set(organizationId, s);
	}
	const state = s;
	if (state.used + state.pending >= quota) throw quotaExceeded(quota, now);
	state.pending += 1;

	const near = state.used + state.pending >= quota * 0.8;
	if (!state.known || near || state.pending >= METER_FLUSH_COUNT || now - state.lastFlush >= METER_FLUSH_MS) {
		const count = state.pending;
		state.pending = 0;
		state.lastFlush = now;
		const flush = usageCounter(c.env, organizationId)
			.add({ organizationId, count, quota })
			.then((r: AddResult) => {
				if (r.month === state.month) state.used = r.monthUsed;
				state.known = true;
			})
			.catch((err: unknown) => {
				state.pending += count; // sent again with the next flush
				c.get("logger").warn("usage counter unavailable", { error: err instanceof Error ? err.message : String(err) });
			});
		// Unknown or near the quota: wait for the exact total. Otherwise count off the hot path.
		if (!state.known || near) await flush;
		else c.executionCtx.waitUntil(flush);
	}
}
