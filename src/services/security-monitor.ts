import type { Env } from "../env";
import type { Logger } from "../lib/logger";
import type { RequestMeta } from "../lib/request-meta";
import { TtlCache } from "../lib/ttl-cache";
import { auditEntry, publish } from "./events-bus";

const BURST_THRESHOLD = 10;
const BURST_WINDOW_MS = 60_000;

// Isolate-local counters: (org, client IP, status) → failures in the current window. An audit entry is
// written when a window reaches BURST_THRESHOLD, once per window; each isolate counts on its own.
const failures = new TtlCache<string, { count: number; reported: boolean }>(10_000);
// Rate-limit refusals are audited once per limit key per minute, not once per refused request.
const refusals = new TtlCache<string, true>(10_000);

const ORG_PATH = /^\/api\/orgs\/([^/]+)/;

/** What a monitor needs to write its audit entry off the request's hot path. */
export interface MonitorDeps {
	env: Env;
	meta: RequestMeta;
	logger: Logger;
	waitUntil: (p: Promise<unknown>) => void;
}

/**
 * Called for every response: counts 401/403 answers on organization routes and audits a burst (the audit
 * work is handed to waitUntil). `depsOf` is called only for such an answer: others build nothing.
 */
export function noteResponse(depsOf: () => MonitorDeps, path: string, status: number): void {
	if (status !== 401 && status !== 403) return;
	const orgId = ORG_PATH.exec(path)?.[1];
	if (!orgId) return;
	const deps = depsOf();
	const key = `${orgId}|${deps.meta.ip ?? "unknown"}|${status}`;
	const entry = failures.get(key) ?? { count: 0, reported: false };
	entry.count += 1;
	if (!failures.get(key)) failures.set(key, entry, BURST_WINDOW_MS);
	if (entry.count < BURST_THRESHOLD || entry.reported) return;
	entry.reported = true;
	deps.waitUntil(
		(async () => {
			// Only organizations that exist get entries: a 401 burst can name any id in the path.
			const exists = await deps.env.DB.prepare("SELECT 1 AS ok FROM organizations WHERE id = ?").bind(orgId).first();
			if (!exists) return;
			const meta = status === 401 ? { ...deps.meta, actor: null } : deps.meta;
			const audit = auditEntry(meta, {
				organizationId: orgId,
				action: status === 401 ? "security.unauthenticated_burst" : "security.forbidden_burst",
				targetType: "organization",
				targetId: orgId,
				after: { status, count: entry.count, windowSeconds: BURST_WINDOW_MS / 1000 },
			});
			await publish(deps.env, [audit], deps.logger);
		})().catch(() => undefined),
	);
}

/** Audits a tenant rate-limit refusal (once per key per minute). */
export function noteRateLimited(deps: MonitorDeps, organizationId: string, key: string, limit: number): void {
	if (refusals.get(key)) return;
	refusals.set(key, true, 60_000);
	deps.waitUntil(
		publish(
			deps.env,
			[
				auditEntry(deps.meta, {
					organizationId,
					action: "rate_limit.exceeded",
					targetType: "rate_limit",
					targetId: key,
					after: { limit, windowSeconds: 60 },
				}),
			],
			deps.logger,
		).catch(() => undefined),
	);
}
