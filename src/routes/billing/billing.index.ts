import { createRouter } from "../../lib/create-app";
import { billingState, cancelSubscription, listInvoices, openBillingPortal, startCheckout } from "../../services/billing";
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
	})
	.openapi(routes.portal, async (c) => {
		const orgId = c.get("access").organization.id;
		const body = c.req.valid("json") as { returnUrl?: string } | undefined;
		return c.json(await openBillingPortal(billingDeps(c), orgId, body?.returnUrl), 201);
	})
	.openapi(routes.cancel, async (c) => {
		const orgId = c.get("access").organization.id;
		return c.json(await cancelSubscription(billingDeps(c), orgId, c.req.valid("json").atPeriodEnd), 200);
	})
	.openapi(routes.invoices, async (c) => {
		const orgId = c.get("access").organization.id;
		const { limit, cursor } = c.req.valid("query");
		return c.json(await listInvoices(billingDeps(c), orgId, { limit, cursor }), 200);
	});
