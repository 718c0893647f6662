import { createRoute } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { jsonBodyErrors } from "../../openapi";
import { adminData } from "../orgs/orgs.routes";
import { createOrder } from "../payments/payments.routes";
import { deprecated } from "./deprecated";

// Deprecated aliases for clients of the earlier Spring system: the current route's auth, guards,
// body and answers, plus `Deprecation` and a `Link` to the successor.

export const legacyAdminData = createRoute({
	...adminData,
	path: "/api/org/{orgId}/admin-data",
	tags: ["legacy"],
	summary: OPENAPI_TEXT ? "Deprecated alias of GET /api/orgs/{orgId}/admin-data" : undefined,
	deprecated: true,
	middleware: [
		deprecated((c) => `/api/orgs/${encodeURIComponent(c.req.param("orgId") ?? "")}/admin-data`),
		...(adminData.middleware as MiddlewareHandler[]),
	],
});

export const legacyCreateOrder = createRoute({
	...createOrder,
	path: "/api/payments/create-order",
	tags: ["legacy"],
	summary: OPENAPI_TEXT ? "Deprecated alias of POST /api/payments/orders" : undefined,
	deprecated: true,
	middleware: [deprecated(() => "/api/payments/orders"), ...(createOrder.middleware as MiddlewareHandler[])],
	responses: { ...createOrder.responses, ...jsonBodyErrors },
});
