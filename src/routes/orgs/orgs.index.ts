import { createRouter } from "../../lib/create-app";
import { listOrgEvents } from "../../services/events-log";
import { listMembers, orgAdminData } from "../../services/identity";
import { membersRouter } from "../members/members.index";
import * as routes from "./orgs.routes";

export const orgsRouter = createRouter()
	.openapi(routes.getOrg, (c) => {
		const { organization, role } = c.get("access");
		return c.json({ ...organization, role }, 200);
	})
	.openapi(routes.listMembers, async (c) => {
		const { orgId } = c.req.valid("param");
		return c.json(await listMembers(c.get("db"), orgId, c.req.valid("query")), 200);
	})
	.openapi(routes.adminData, async (c) => {
		const { orgId } = c.req.valid("param");
		return c.json(await orgAdminData(c.get("db"), orgId), 200);
	})
	.openapi(routes.listEvents, async (c) => {
		const { orgId } = c.req.valid("param");
		return c.json(await listOrgEvents(c.get("db"), orgId, c.req.valid("query")), 200);
	})
	// Member and invitation management (src/routes/members), under the same /api/orgs/:orgId paths.
	.route("/", membersRouter);
