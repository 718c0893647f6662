import { eq } from "drizzle-orm";
import { createRouter } from "../../lib/create-app";
import { subscriptions } from "../../db/schema";
import { publishChange } from "../../services/events-bus";
import { PLANS, planOf } from "../../services/plans";
import { createCheckoutSession } from "../../services/stripe";
import { getUser } from "../../services/users";
import { requestMeta } from "../../middleware/request-meta";
import * as routes from "./billing.routes";

export const billingRouter = createRouter()
	.openapi(routes.getBilling, async (c) => {
		const { organization, limits } = c.get("access");
		const [sub] = await c.get("db").select().from(subscriptions).where(eq(subscriptions.organizationId, organization.id));
		const plan = planOf(organization.plan);
		return c.json(
			{
				organizationId: organization.id,
				plan,
				status: sub?.status ?? "none",
				periodEnd: sub?.currentPeriodEnd ?? null,
				provider: sub?.provider ?? null,
				entitlements: { features: PLANS[plan].features, limits },
			},
			200,
		);
	})
	.openapi(routes.checkout, async (c) => {
		const { plan, successUrl, cancelUrl } = c.req.valid("json");
		const orgId = c.get("access").organization.id;
		const db = c.get("db");
		const [sub] = await db.select().from(subscriptions).where(eq(subscriptions.organizationId, orgId));
		const user = await getUser(db, c.get("auth").userId);
		const session = await createCheckoutSession(c.get("config"), {
			organizationId: orgId,
			plan,
			successUrl,
			cancelUrl,
			customerId: sub?.customerId,
			email: user?.email,
		});
		await publishChange(c.env, requestMeta(c), c.get("logger"), {
			organizationId: orgId,
			action: "billing.checkout_started",
			targetType: "checkout_session",
			targetId: session.id,
			after: { plan },
		});
		return c.json(session, 201);
	});
