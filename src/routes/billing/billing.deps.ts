import type { Context } from "hono";
import type { AppEnv } from "../../env";
import { requestMeta } from "../../middleware/request-meta";
import type { BillingDeps } from "../../services/billing";

/** The plain values the billing and payments services take from a request. */
export function billingDeps(c: Context<AppEnv>): BillingDeps {
	return { db: c.get("db"), env: c.env, config: c.get("config"), meta: requestMeta(c), logger: c.get("logger") };
}
