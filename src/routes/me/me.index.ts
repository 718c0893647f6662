import { createRouter } from "../../lib/create-app";
import { ApiError } from "../../errors";
import { API_KEY_PREFIX } from "../../auth/api-key";
import { INVALID, INVALID_DETAIL } from "../../middleware/auth";
import { activeOrgAccess } from "../../services/access";
import { getUser } from "../../services/users";
import * as routes from "./me.routes";

export const meRouter = createRouter().openapi(routes.me, async (c) => {
	const auth = c.get("auth");
	const db = c.get("db");
	if (auth.apiKey) {
		const key = auth.apiKey;
		const access = await activeOrgAccess(db, auth);
		return c.json(
			{
				user: null,
				apiKey: { id: key.id, name: key.name, prefix: API_KEY_PREFIX, last4: key.last4, expiresAt: key.expiresAt },
				organization: access
					? { id: access.organization.id, slug: access.organization.slug, role: null, permissions: [...access.permissions].sort() }
					: null,
			},
			200,
		);
	}
	// An active organization the caller no longer belongs to is reported as none.
	const [row, access] = await Promise.all([getUser(db, auth.userId), activeOrgAccess(db, auth)]);
	// A deleted user's token: the one detail of every refused credential.
	if (row?.deletedAt) throw new ApiError("INVALID_TOKEN", INVALID_DETAIL, { headers: INVALID });
	return c.json(
		{
			user: {
				id: auth.userId,
				email: row?.email ?? null,
				firstName: row?.firstName ?? null,
				lastName: row?.lastName ?? null,
			},
			organization: access?.role
				? {
						id: access.organization.id,
						slug: access.organization.slug ?? auth.orgSlug,
						role: access.role,
						permissions: [...access.permissions].sort(),
					}
				: null,
		},
		200,
	);
});
