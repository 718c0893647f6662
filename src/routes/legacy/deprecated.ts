import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../../env";

/**
 * When the aliases were deprecated (29 Nov 2026, 00:00 UTC: the release that added them as aliases), as
 * RFC 9745's `Deprecation` header gives it: a Structured Field Date, seconds since the epoch after `@`.
 */
export const DEPRECATED_SINCE = "@1795910400";

/**
 * Marks every answer of a deprecated alias, errors included: `Deprecation` (RFC 9745: the date it was
 * deprecated, DEPRECATED_SINCE) and a `Link` to the route that replaces it (rel="successor-version").
 * @example middleware: [deprecated(() => "/api/payments/orders"), ...createOrder.middleware]
 */
export function deprecated(successor: (c: Context<AppEnv>) => string) {
	return createMiddleware<AppEnv>(async (c, next) => {
		await next();
		c.res.headers.set("Deprecation", DEPRECATED_SINCE);
		c.res.headers.set("Link", `<${successor(c)}>; rel="successor-version"`);
	});
}
