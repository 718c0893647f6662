import type { Context } from "hono";
import type { AppEnv } from "../env";
import { TtlCache } from "../lib/ttl-cache";
import { auditFromRequest, publish } from "./events-bus";

export const BURST_THRESHOLD = 10;
export const BURST_WINDOW_MS = 60_000;

// Isolate-local counters: (org, client IP, status) → failures in the current window. An audit entry is
// written when a window reaches BURST_THRESHOLD, once per window; each isolate counts on its own.
const failures = new TtlCache<string, { count: number; reported: boolean }>(10_000);
// Rate-limit refusals are audited once per limit key per minute, not once per refused request.
const refusals = new TtlCache<string, true>(10_000);

const ORG_PATH = /^\/api\/orgs\/([^/]+)/;

/** Called for every response: counts 401/403 answers on organization routes and audits a burst. */
export function noteResponse(c: Context<AppEnv>, status: number): void {
	if (status !== 401 && status !== 403) return;
	const orgId = ORG_PATH.exec(c.req.path)?.[1];
	if (!orgId) return;
	const ip = c.req.header("cf-connecting-ip") ?? "unknown";
	const key = `${orgId}|${ip}|${status}`;
	const entry = failures.get(key) ?? { count: 0, reported: false };
	entry.count += 1;
	if (!failures.get(key)) failures.set(key, entry, BURST_WINDOW_MS);
	if (entry.count < BURST_THRESHOLD || entry.reported) return;
	entry.reported = true;
	c.executionCtx.waitUntil(
		(async () => {
			// Only organizations that exist get entries: a 401 burst can name any id in the path.
			const exists = await c.env.DB.prepare("SELECT 1 AS ok FROM organizations WHERE id = ?").bind(orgId).first();
			if (!exists) return;
			const audit = auditFromRequest(c, {
				organizationId: orgId,
				action: status === 401 ? "security.unauthenticated_burst" : "security.forbidden_burst",
				targetType: "organization",
				targetId: orgId,
				after: { status, count: entry.count, windowSeconds: BURST_WINDOW_MS / 1000 },
			});
			if (status === 401) audit.actorId = null;
			await publish(c.env, [audit], c.get("logger"));
		})().catch(() => undefined),
	);
}

/** Audits a tenant rate-limit refusal (once per key per minute). */
export function noteRateLimited(c: Context<AppEnv>, organizationId: string, key: string, limit: number): void {
	if (refusals.get(key)) return;
	refusals.set(key, true, 60_000);
	c.executionCtx.waitUntil(
		publish(
			c.env,
			[
				auditFromRequest(c, {
					organizationId,
					action: "rate_limit.exceeded",
					targetType: "rate_limit",
					targetId: key,
					after: { limit, windowSeconds: 60 },
				}),
			],
			c.get("logger"),
		).catch(() => undefined),
	);
}
