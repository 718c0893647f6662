import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../env";
import { seatRefusal, seatStanding } from "../services/identity";

/**
 * 402 problem+json for a member whose place in seat order is beyond the plan's seats (admins first,
 * then in the order they joined; see services/identity.ts "Seats"). Use after requireOrgMember.
 */
export function requireSeat() {
	return createMiddleware<AppEnv>(async (c, next) => {
		// An API key holds no seat (it is not a member): nothing to look up.
		if (c.get("access").source === "api_key") return next();
		const orgId = c.get("access").organization.id;
		const store = c.get("store");
		const standing = store ? await store.seat(orgId, c.get("auth").userId) : await seatStanding(c.get("db"), orgId, c.get("auth").userId);
		if (!standing.served) throw seatRefusal(standing);
		await next();
	});
}
