import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../../env";

/**
 * Marks every answer of a deprecated alias, errors included: `Deprecation: true` and a `Link` to the
 * route that replaces it (rel="successor-version").
 * @example middleware: [deprecated(() => "/api/payments/orders"), ...createOrder.middleware]
 */
export function deprecated(successor: (c: Context<AppEnv>) => string) {
	return createMiddleware<AppEnv>(async (c, next) => {
		await next();
		c.res.headers.set("Deprecation", "true");
		c.res.headers.set("Link", `<${successor(c)}>; rel="successor-version"`);
	});
}
