import { num as n, obj, str as s } from "../../lib/payload";
import type { ClerkEnvelope } from "../../queue/messages";
import { MalformedPayload, type SyncPlan } from "../sync-plan";
import { invitationPlanners } from "./invitations";
import { membershipPlanners } from "./memberships";
import { organizationPlanners } from "./organizations";
import { rolePlanners } from "./roles";
import { sessionPlanners } from "./sessions";
import { type ClerkEvent, ignore, metadataRegion, ms, type Planner, planOf } from "./shared";
import { userPlanners } from "./users";

export type { SyncPlan } from "../sync-plan";

/** Every Clerk event type this service mirrors, by family; any other type is recorded as ignored. */
const PLANNERS = new Map<string, Planner>(
	Object.entries({
		...userPlanners,
		...organizationPlanners,
		...membershipPlanners,
		...invitationPlanners,
		...rolePlanners,
		// After userPlanners: its user.deleted also revokes the user's sessions.
		...sessionPlanners,
	}),
);

/**
 * Turns one Clerk event into D1 statements, run later in a db.batch (atomic, one round trip).
 *
 * Ordering: each mirrored row keeps Clerk's clock in source_updated_at (the object's updated_at, or
 * the envelope timestamp for deletions). Upserts carry `WHERE excluded.ts >= stored ts`, so an older
 * event never overwrites newer state whatever order events arrive in; users and organizations stay
 * deleted once deleted. A membership arriving before its user or organization creates placeholders
 * (source_updated_at = 0) that the real event later fills in.
 */
export function planClerkEvent(envelope: ClerkEnvelope, eventTs: number, now: number, eventId = ""): SyncPlan {
	const d = envelope.data;
	// Clerk sends ms; a timestamp in seconds (hand-made payloads, other senders) is read as seconds.
	const ts = ms(eventTs) ?? eventTs;
	const e: ClerkEvent = {
		type: envelope.type,
		data: d,
		id: s(d.id),
		eventTs: ts,
		objectTs: ms(n(d.updated_at)) ?? ts,
		now,
		eventId,
	};
	const orgId = s(d.organization_id) ?? s(obj(d.organization).id);
	const planner = PLANNERS.get(envelope.type);
	if (!planner) return ignore(e, orgId);
	try {
		const plan = planner(e);
		// The organization's data as the event carries it (a membership event embeds it).
		const org = envelope.type.startsWith("organization.") ? d : obj(d.organization);
		if (!plan.ignored && envelope.type !== "organization.deleted" && metadataRegion(org) === "eu") plan.regionClaim = s(org.id) ?? undefined;
		return plan;
	} catch (err) {
		// A malformed part fails this event alone, visibly; any other error is a bug and propagates (retried).
		if (err instanceof MalformedPayload) return planOf(e, { organizationId: orgId, failed: err.message });
		throw err;
	}
}
