import type { Database } from "../../db/client";
import type { Env } from "../../env";
import { errorFields, type Logger } from "../../lib/logger";
import { clearAccessCache, invalidateAccess } from "../../services/access";
import { publish, systemAudit } from "../../services/events-bus";
import { outcomesOf } from "../../services/events-log";
import { activeOrgIdsOf } from "../../services/identity";
import { invalidateUser } from "../../services/users";
import type { WebhookMessage } from "../messages";
import { storeRoute, storeStub } from "../../tenant-store/directory";
import type { TenantEvent } from "../tenant-events";
import type { Planned } from "./planners";

/** Drops the isolate's cached access and user rows that an applied event changed. */
export function invalidateCaches(t: Planned): void {
	const p = t.plan;
	if (p.invalidate.all) {
		clearAccessCache();
		invalidateUser();
	} else if (p.invalidate.orgId) invalidateAccess(p.invalidate.orgId, p.invalidate.userId);
}

/**
 * Tells the stores of the organizations an applied batch changed (membership, organization) to forget
 * their mirrored directory answers, before the messages are acked: once an event is consumed, the
 * tenant's next request sees it (a removed member gets 403). Changes to global roles or users reach
 * the stores when their mirror expires (tenant-store/object.ts MIRROR_TTL_MS).
 */
export async function notifyStores(env: Env, applied: Planned[], logger: Logger): Promise<void> {
	const orgIds = new Set(applied.map((t) => t.plan.invalidate.orgId).filter((o): o is string => typeof o === "string"));
	for (const orgId of orgIds) {
		try {
			const route = await storeRoute(env, orgId);
			if (route.state === "store") await storeStub(env, orgId, route.region).directoryChanged();
		} catch (err) {
			logger.warn("could not tell the tenant store its directory changed", { orgId, ...errorFields(err) });
		}
	}
}

/**
 * Audit entries and tenant webhooks for the events that were applied (outcome processed, not stale),
 * plus a user.signed_in audit entry in each organization of a user whose session was created.
 * Ids derive from the svix id, so a redelivery is deduplicated downstream.
 */
export async function emitApplied(env: Env, db: Database, applied: Planned[], logger: Logger): Promise<void> {
	const wanted = applied.filter((t) => (t.plan.events?.length ?? 0) > 0 || t.body.type === "session.created");
	if (wanted.length === 0) return;
	// The D1 writes are committed: a failure here must not make the batch run again, so it is logged.
	try {
		const outcome = await outcomesOf(
			db,
			wanted.map((t) => t.body.svixId),
		);
		const out: TenantEvent[] = [];
		for (const t of wanted) {
			if (t.body.type === "session.created") out.push(...(await signInAudits(db, t.body)));
			else if (outcome.get(t.body.svixId) === "processed") out.push(...(t.plan.events ?? []));
		}
		await publish(env, out, logger);
	} catch (err) {
		logger.error("could not publish tenant events for applied webhooks", { svixIds: wanted.map((t) => t.body.svixId), ...errorFields(err) });
	}
}

async function signInAudits(db: Database, body: WebhookMessage): Promise<TenantEvent[]> {
	let userId: string | null = null;
	try {
		userId = (JSON.parse(body.body) as { data?: { user_id?: string } }).data?.user_id ?? null;
	} catch {
		return [];
	}
	if (!userId) return [];
	const orgIds = await activeOrgIdsOf(db, userId);
	return orgIds.map((organizationId) =>
		systemAudit({
			id: `aud_${body.svixId}_${organizationId}`,
			organizationId,
			action: "user.signed_in",
			targetType: "user",
			targetId: userId,
			occurredAt: body.timestamp,
		}),
	);
}
