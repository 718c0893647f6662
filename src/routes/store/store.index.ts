import type { Context } from "hono";
import { createRouter } from "../../app";
import type { AppEnv } from "../../env";
import { etag, ifMatchVersion } from "../../lib/etag";
import { TenantStore } from "../../services/tenant-store";
import * as routes from "./store.routes";

/** The store for the organization the caller was authorized for (never the raw path parameter). */
const store = (c: Context<AppEnv>) => new TenantStore(c.get("db"), c.get("access").organization.id);
const ifMatch = (c: Context<AppEnv>) => ifMatchVersion(c.req.header("if-match"));
/** organization_id stays internal: responses never carry it. */
function strip<T extends { organizationId: string }>(row: T): Omit<T, "organizationId"> {
	const { organizationId: _, ...rest } = row;
	return rest;
}
const stripAll = <T extends { organizationId: string }>(p: { data: T[]; nextCursor: string | null }) => ({
	data: p.data.map(strip),
	nextCursor: p.nextCursor,
});
function detail<T extends { organizationId: string; items: { organizationId: string; orderId: string }[]; history: { organizationId: string; id: string; orderId: string }[] }>(o: T) {
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
		return c.json(strip(row), 201, { ETag: etag(row.version) });
	})
	.openapi(routes.getCategory, async (c) => {
		const row = await store(c).getCategory(c.req.valid("param").categoryId);
		return c.json(strip(row), 200, { ETag: etag(row.version) });
	})
	.openapi(routes.updateCategory, async (c) => {
		const row = await store(c).updateCategory(c.req.valid("param").categoryId, c.req.valid("json"), ifMatch(c));
		return c.json(strip(row), 200, { ETag: etag(row.version) });
	})
	.openapi(routes.deleteCategory, async (c) => {
		await store(c).deleteCategory(c.req.valid("param").categoryId, ifMatch(c));
		return c.body(null, 204);
	})
	// products
	.openapi(routes.listProducts, async (c) => c.json(stripAll(await store(c).listProducts(c.req.valid("query"))), 200))
	.openapi(routes.createProduct, async (c) => {
		const row = await store(c).createProduct(c.req.valid("json"));
		return c.json(strip(row), 201, { ETag: etag(row.version) });
	})
	.openapi(routes.getProduct, async (c) => {
		const row = await store(c).getProduct(c.req.valid("param").productId);
		return c.json(strip(row), 200, { ETag: etag(row.version) });
	})
	.openapi(routes.updateProduct, async (c) => {
		const row = await store(c).updateProduct(c.req.valid("param").productId, c.req.valid("json"), ifMatch(c));
		return c.json(strip(row), 200, { ETag: etag(row.version) });
	})
	.openapi(routes.deleteProduct, async (c) => {
		await store(c).deleteProduct(c.req.valid("param").productId, ifMatch(c));
		return c.body(null, 204);
	})
	.openapi(routes.adjustInventory, async (c) => {
		const { productId } = c.req.valid("param");
		const { delta, variantId } = c.req.valid("json");
		const { stock } = await store(c).adjustStock(productId, delta, variantId);
		return c.json({ productId, variantId: variantId ?? null, stock }, 200);
	})
	// variants
	.openapi(routes.listVariants, async (c) => c.json({ data: (await store(c).listVariants(c.req.valid("param").productId)).map(strip) }, 200))
	.openapi(routes.createVariant, async (c) => {
		const row = await store(c).createVariant(c.req.valid("param").productId, c.req.valid("json"));
		return c.json(strip(row), 201, { ETag: etag(row.version) });
	})
	.openapi(routes.updateVariant, async (c) => {
		const { productId, variantId } = c.req.valid("param");
		const row = await store(c).updateVariant(productId, variantId, c.req.valid("json"), ifMatch(c));
		return c.json(strip(row), 200, { ETag: etag(row.version) });
	})
	.openapi(routes.deleteVariant, async (c) => {
		const { productId, variantId } = c.req.valid("param");
		await store(c).deleteVariant(productId, variantId, ifMatch(c));
		return c.body(null, 204);
	})
	// orders
	.openapi(routes.listOrders, async (c) => c.json(stripAll(await store(c).listOrders(c.req.valid("query"))), 200))
	.openapi(routes.createOrder, async (c) => {
		const order = await store(c).createOrder(c.req.valid("json"), c.get("auth").userId);
		return c.json(detail(order), 201, { ETag: etag(order.version) });
	})
	.openapi(routes.getOrder, async (c) => {
		const order = await store(c).getOrder(c.req.valid("param").orderId);
		return c.json(detail(order), 200, { ETag: etag(order.version) });
	})
	.openapi(routes.transitionOrder, async (c) => {
		const { status, note } = c.req.valid("json");
		const order = await store(c).transitionOrder(c.req.valid("param").orderId, status, c.get("auth").userId, note, ifMatch(c));
		return c.json(detail(order), 200, { ETag: etag(order.version) });
	});
