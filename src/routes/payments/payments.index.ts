import { createdLocation, createRouter } from "../../lib/create-app";
import { withChangeLog } from "../../middleware/change-log";
import { createPaymentOrder, getPaymentOrder, verifyPayment } from "../../services/payments";
import { billingDeps } from "../billing/billing.deps";
import * as routes from "./payments.routes";

export const paymentsRouter = createRouter()
	.openapi(routes.createOrder, async (c) => {
		const orgId = c.get("access").organization.id;
		const order = await withChangeLog(c, (log) => createPaymentOrder(billingDeps(c), orgId, c.get("auth").userId, c.req.valid("json"), log));
		return c.json(order, 201, createdLocation(c, order.paymentOrderId));
	})
	.openapi(routes.getOrder, async (c) => {
		const orgId = c.get("access").organization.id;
		return c.json(await getPaymentOrder(billingDeps(c), orgId, c.req.valid("param").id), 200);
	})
	.openapi(routes.verify, async (c) => {
		const { organization, permissions } = c.get("access");
		const caller = { organizationId: organization.id, userId: c.get("auth").userId, permissions };
		return c.json(await withChangeLog(c, (log) => verifyPayment(billingDeps(c), caller, c.req.valid("json"), log)), 200);
	});
