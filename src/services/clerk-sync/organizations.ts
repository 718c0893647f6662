import { endBillingWhenDeleted } from "../billing-endings";
import { ignore, metadataRegion, type Planner, planOf, softDelete, staleRow, upsertOrg } from "./shared";

/**
 * organization.created / organization.updated: upsert ordered by updated_at; a deleted organization stays
 * deleted. A dataRegion other than "eu" or "default" is not a reason to fail the event: default, with a warning.
 */
const upsert: Planner = (e) => {
	if (!e.id) return ignore(e);
	const region = metadataRegion(e.data);
	return planOf(e, {
		warning: [undefined, "eu", "default"].includes(region as string) ? undefined : "unknown dataRegion: default",
		organizationId: e.id,
		statements: [upsertOrg(e.data, e.objectTs, e.now)],
		staleCheck: staleRow("organizations", "id", e.id, e.objectTs, true),
		invalidate: { orgId: e.id },
	});
};

/** organization.deleted: tombstone ordered by the envelope's time; its billing at Stripe is then ended (billing-endings.ts). */
const remove: Planner = (e) => {
	if (!e.id) return ignore(e);
	return planOf(e, {
		organizationId: e.id,
		statements: [softDelete("organizations", e.id, e.eventTs, e.now), endBillingWhenDeleted(e.id, e.now)],
		invalidate: { orgId: e.id },
	});
};

export const organizationPlanners: Record<string, Planner> = {
	"organization.created": upsert,
	"organization.updated": upsert,
	"organization.deleted": remove,
};
