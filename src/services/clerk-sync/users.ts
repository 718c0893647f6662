import { ignore, type Planner, planOf, softDelete, staleRow, upsertUser } from "./shared";

/** user.created / user.updated: upsert ordered by the user's updated_at; a deleted user stays deleted. */
const upsert: Planner = (e) => {
	if (!e.id) return ignore(e);
	return planOf(e, {
		statements: [upsertUser(e.data, e.objectTs, e.now)],
		staleCheck: staleRow("users", "id", e.id, e.objectTs, true),
		invalidate: { all: true },
	});
};

/** user.deleted: tombstone ordered by the envelope's time. */
const remove: Planner = (e) => {
	if (!e.id) return ignore(e);
	return planOf(e, { statements: [softDelete("users", e.id, e.eventTs, e.now)], invalidate: { all: true } });
};

export const userPlanners: Record<string, Planner> = {
	"user.created": upsert,
	"user.updated": upsert,
	"user.deleted": remove,
};
