import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../../env";
import { ApiError } from "../../errors";
import { takeRateLimit } from "../../middleware/rate-limit";

/**
 * Provider webhooks are limited by IP only while their signature does not verify: a request refused for
 * its signature (absent, malformed, bad, stale) spends a token of the per-IP budget first (a 429 once it
 * is gone), and a correctly signed delivery spends none, so a provider's burst from one address (Stripe's
 * invoices at the turn of a period, Clerk's bulk changes) is never refused by it, nor waits on the limiter.
 */

/** Refuses a request whose signature did not verify (or was absent), after it spent a token of the per-IP budget. */
export async function refuseUnverified(c: Context<AppEnv>, err: ApiError): Promise<never> {
	const limits = await takeRateLimit(c, "public");
	throw new ApiError(err.code, err.detail, { headers: { ...err.headers, ...limits }, errors: err.errors });
}

/** No signature at all: the credential of the operation's security scheme is missing (a 401, as for a missing Bearer token). */
export const SIGNATURE_MISSING = { "WWW-Authenticate": "Bearer" };

/**
 * 401 with a bare `WWW-Authenticate: Bearer` (after spending a token of the per-IP budget) when the request
 * carries no `header`: refused like a missing Bearer token rather than as a 400 for a missing header (it
 * runs before the route's request validators). The handler verifies the signature itself.
 * @example createRoute({ middleware: [requireSignatureHeader("stripe-signature")], security: [{ stripeSignature: [] }], ... })
 */
export function requireSignatureHeader(header: string) {
	return createMiddleware<AppEnv>(async (c, next) => {
		if (!c.req.header(header)) {
			return refuseUnverified(c, new ApiError("UNAUTHORIZED", `a webhook signature (${header}) is required`, { headers: SIGNATURE_MISSING }));
		}
		await next();
	});
}
