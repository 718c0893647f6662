import type { Context } from "hono";
import { createRouter } from "../../lib/create-app";
import type { AppEnv } from "../../env";
import { etag, ifMatchVersion } from "../../lib/etag";
import { publishChange } from "../../services/events-bus";
import { TenantStore } from "../../services/tenant-store";
import { requestMeta } from "../../middleware/request-meta";
import * as routes from "./store.routes";

/** The store for the organization the caller was authorized for (never the raw path parameter). */
const store = (c: Context<AppEnv>) => new TenantStore(c.get("db"), c.get("access").organization.id);
const ifMatch = (c: Context<AppEnv>) => ifMatchVersion(c.req.header("if-match"));
/** Audit entry (and optionally an outgoing webhook event) for a committed change. */
const audit = (
	c: Context<AppEnv>,
	action: string,
	targetType: string,
	targetId: string,
	before?: unknown,
	after?: unknown,
	event?: { type: string; data: unknown },
) =>
	publishChange(c.env, requestMeta(c), c.get("logger"), { organizationId: c.get("access").organization.id, action, targetType, targetId, before, after }, event);
/** organization_id stays internal: responses never carry it. */
function strip<T extends { organizationId: string }>(row: T): Omit<T, "organizationId"> {
	const { organizationId: _, ...rest } = row;
	return rest;
}
const stripAll = <T extends { organizationId: string }>(p: { data: T[]; nextCursor: string | null }) => ({
	data: p.data.map(strip),
	nextCursor: p.nextCursor,
});
function detail<
	T extends {
		organizationId: string;
		items: { organizationId: string; orderId: string }[];
		history: { organizationId: string; id: string; orderId: string }[];
	},
>(o: T) {
	return {
		...strip(o),
		items: o.items.map(({ organizationId: _o, orderId: _id, ...it }) => it),
		history: o.history.map(({ organizationId: _o, id: _i, orderId: _id, ...h }) => h),
	};
}

export const storeRouter = createRouter()
	// categories
	.openapi(routes.listCategories, async (c) => c.json(stripAll(await store(c).listCategories(c.req.valid("query"))), 200))
	.openapi(routes.createCategory, async (c) => {
		const row = await store(c).createCategory(c.req.valid("json"));
		await audit(c, "category.created", "category", row.id, undefined, strip(row));
		return c.json(strip(row), 201, { ETag: etag(row.version) });
	})
	.openapi(routes.getCategory, async (c) => {
		const row = await store(c).getCategory(c.req.valid("param").categoryId);
		return c.json(strip(row), 200, { ETag: etag(row.version) });
	})
	.openapi(routes.updateCategory, async (c) => {
		const row = await store(c).updateCategory(c.req.valid("param").categoryId, c.req.valid("json"), ifMatch(c));
		await audit(c, "category.updated", "category", row.id, c.req.valid("json"), strip(row));
		return c.json(strip(row), 200, { ETag: etag(row.version) });
	})
	.openapi(routes.deleteCategory, async (c) => {
		await store(c).deleteCategory(c.req.valid("param").categoryId, ifMatch(c));
		await audit(c, "category.deleted", "category", c.req.valid("param").categoryId);
		return c.body(null, 204);
	})
	// products
	.openapi(routes.listProducts, async (c) => c.json(stripAll(await store(c).listProducts(c.req.valid("query"))), 200))
	.openapi(routes.createProduct, async (c) => {
		const row = await store(c).createProduct(c.req.valid("json"));
		await audit(c, "product.created", "product", row.id, undefined, strip(row));
		return c.json(strip(row), 201, { ETag: etag(row.version) });
	})
	.openapi(routes.getProduct, async (c) => {
		const row = await store(c).getProduct(c.req.valid("param").productId);
		return c.json(strip(row), 200, { ETag: etag(row.version) });
	})
	.openapi(routes.updateProduct, async (c) => {
		const s = store(c);
		const before = await s.getProduct(c.req.valid("param").productId);
		const row = await s.updateProduct(before.id, c.req.valid("json"), ifMatch(c));
		await audit(c, "product.updated", "product", row.id, strip(before), strip(row));
		return c.json(strip(row), 200, { ETag: etag(row.version) });
	})
	.openapi(routes.deleteProduct, async (c) => {
		await store(c).deleteProduct(c.req.valid("param").productId, ifMatch(c));
		await audit(c, "product.deleted", "product", c.req.valid("param").productId);
		return c.body(null, 204);
	})
	.openapi(routes.adjustInventory, async (c) => {
		const { productId } = c.req.valid("param");
		const { delta, variantId } = c.req.valid("json");
		const { stock } = await store(c).adjustStock(productId, delta, variantId);
		await audit(c, "inventory.adjusted", variantId ? "variant" : "product", variantId ?? productId, { delta }, { stock });
		return c.json({ productId, variantId: variantId ?? null, stock }, 200);
	})
	// variants
	.openapi(routes.listVariants, async (c) =>
		c.json({ data: (await store(c).listVariants(c.req.valid("param").productId)).map(strip) }, 200),
	)
	.openapi(routes.createVariant, async (c) => {
		const row = await store(c).createVariant(c.req.valid("param").productId, c.req.valid("json"));
		await audit(c, "variant.created", "variant", row.id, undefined, strip(row));
		return c.json(strip(row), 201, { ETag: etag(row.version) });
	})
	.openapi(routes.updateVariant, async (c) => {
		const { productId, variantId } = c.req.valid("param");
		const row = await store(c).updateVariant(productId, variantId, c.req.valid("json"), ifMatch(c));
		await audit(c, "variant.updated", "variant", row.id, c.req.valid("json"), strip(row));
		return c.json(strip(row), 200, { ETag: etag(row.version) });
	})
	.openapi(routes.deleteVariant, async (c) => {
		const { productId, variantId } = c.req.valid("param");
		await store(c).deleteVariant(productId, variantId, ifMatch(c));
		await audit(c, "variant.deleted", "variant", variantId);
		return c.body(null, 204);
	})
	// orders
	.openapi(routes.listOrders, async (c) => c.json(stripAll(await store(c).listOrders(c.req.valid("query"))), 200))
	.openapi(routes.createOrder, async (c) => {
		const order = await store(c).createOrder(c.req.valid("json"), c.get("auth").userId);
		const summary = { orderId: order.id, status: order.status, totalMinor: order.totalMinor, currency: order.currency };
		await audit(c, "order.created", "order", order.id, undefined, summary, { type: "order.created", data: summary });
		return c.json(detail(order), 201, { ETag: etag(order.version) });
	})
	.openapi(routes.getOrder, async (c) => {
		const order = await store(c).getOrder(c.req.valid("param").orderId);
		return c.json(detail(order), 200, { ETag: etag(order.version) });
	})
	.openapi(routes.transitionOrder, async (c) => {
		const { status, note } = c.req.valid("json");
		const order = await store(c).transitionOrder(c.req.valid("param").orderId, status, c.get("auth").userId, note, ifMatch(c));
		const from = order.history.at(-2)?.toStatus ?? null;
		const data = { orderId: order.id, from, to: order.status };
		await audit(
			c,
			"order.status_changed",
			"order",
			order.id,
			{ status: from },
			{ status: order.status, note: note ?? null },
			{ type: "order.status_changed", data },
		);
		return c.json(detail(order), 200, { ETag: etag(order.version) });
	});
