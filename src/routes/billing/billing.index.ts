import { createRouter } from "../../lib/create-app";
import { billingState, startCheckout } from "../../services/billing";
import { billingDeps } from "./billing.deps";
import * as routes from "./billing.routes";

export const billingRouter = createRouter()
	.openapi(routes.getBilling, async (c) => {
		const { organization, limits } = c.get("access");
		return c.json(await billingState(c.get("db"), organization, limits), 200);
	})
	.openapi(routes.checkout, async (c) => {
		const orgId = c.get("access").organization.id;
		const session = await startCheckout(billingDeps(c), orgId, c.get("auth").userId, c.req.valid("json"));
		return c.json(session, 201);
	});
