import { createRouter } from "../../lib/create-app";
import { listMyOrganizations } from "../../services/identity";
import * as routes from "./my-orgs.routes";

export const myOrgsRouter = createRouter().openapi(routes.myOrganizations, async (c) =>
	c.json(await listMyOrganizations(c.get("db"), c.get("auth").userId, c.req.valid("query")), 200),
);
