import { createRouter } from "../../lib/create-app";
import { withChangeLog } from "../../middleware/change-log";
import { orgAdminData } from "../../services/identity";
import { createPaymentOrder } from "../../services/payments";
import { billingDeps } from "../billing/billing.deps";
import * as routes from "./legacy.routes";

export const legacyRouter = createRouter()
	.openapi(routes.legacyAdminData, async (c) => {
		const { orgId } = c.req.valid("param");
		return c.json(await orgAdminData(c.get("db"), orgId), 200);
	})
	.openapi(routes.legacyCreateOrder, async (c) => {
		const orgId = c.get("access").organization.id;
		const order = await withChangeLog(c, (log) => createPaymentOrder(billingDeps(c), orgId, c.get("auth").userId, c.req.valid("json"), log));
		return c.json(order, 201);
	});
