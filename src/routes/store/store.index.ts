import type { Context } from "hono";
import { createdLocation, createRouter } from "../../lib/create-app";
import type { AppEnv } from "../../env";
import { etag, ifMatchVersion } from "../../lib/etag";
import { publishChange } from "../../services/events-bus";
import { TenantStore } from "../../services/tenant-store";
import { idempotencyClaim, idempotentCommit } from "../../middleware/idempotency";
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
/** 204 for a deleted row, after its `<type>.deleted` audit entry. */
async function deleted(c: Context<AppEnv>, type: string, id: string) {
	await audit(c, `${type}.deleted`, type, id);
	return c.body(null, 204);
}
/** A row response: the row without organizationId, its version as ETag. */
type Row = { id: string; organizationId: string; version: number };
const rowJson = <T extends Row, S extends 200 | 201>(c: Context<AppEnv>, row: T, status: S) =>
	c.json(strip(row), status, { ETag: etag(row.version) });
/** 201 with Location for a created row, after its `<type>.created` audit entry. */
async function created<T extends Row>(c: Context<AppEnv>, type: string, row: T) {
	await audit(c, `${type}.created`, type, row.id, undefined, strip(row));
	return c.json(strip(row), 201, { ETag: etag(row.version), ...createdLocation(c, row.id) });
}
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
	.openapi(routes.listCategories, async (c) => c.json(stripAll(await store(c).catalogue.listCategories(c.req.valid("query"))), 200))
	.openapi(routes.createCategory, async (c) =>
		created(c, "category", await store(c).catalogue.createCategory(c.req.valid("json"), idempotentCommit(c, 201, strip))),
	)
	.openapi(routes.getCategory, async (c) => rowJson(c, await store(c).catalogue.getCategory(c.req.valid("param").categoryId), 200))
	.openapi(routes.updateCategory, async (c) => {
		const row = await store(c).catalogue.updateCategory(c.req.valid("param").categoryId, c.req.valid("json"), ifMatch(c));
		await audit(c, "category.updated", "category", row.id, c.req.valid("json"), strip(row));
		return rowJson(c, row, 200);
	})
	.openapi(routes.deleteCategory, async (c) => {
		const id = c.req.valid("param").categoryId;
		await store(c).catalogue.deleteCategory(id, ifMatch(c));
		return deleted(c, "category", id);
	})
	// products
	.openapi(routes.listProducts, async (c) => c.json(stripAll(await store(c).catalogue.listProducts(c.req.valid("query"))), 200))
	.openapi(routes.createProduct, async (c) =>
		created(c, "product", await store(c).catalogue.createProduct(c.req.valid("json"), idempotentCommit(c, 201, strip))),
	)
	.openapi(routes.getProduct, async (c) => rowJson(c, await store(c).catalogue.getProduct(c.req.valid("param").productId), 200))
	.openapi(routes.updateProduct, async (c) => {
		const s = store(c).catalogue;
		const before = await s.getProduct(c.req.valid("param").productId);
		const row = await s.updateProduct(before.id, c.req.valid("json"), ifMatch(c));
		await audit(c, "product.updated", "product", row.id, strip(before), strip(row));
		return rowJson(c, row, 200);
	})
	.openapi(routes.deleteProduct, async (c) => {
		const id = c.req.valid("param").productId;
		await store(c).catalogue.deleteProduct(id, ifMatch(c));
		return deleted(c, "product", id);
	})
	.openapi(routes.adjustInventory, async (c) => {
		const { productId } = c.req.valid("param");
		const { delta, variantId } = c.req.valid("json");
		const { stock } = await store(c).inventory.adjustStock(productId, delta, variantId, idempotencyClaim(c));
		if (delta === 0) return c.json({ productId, variantId: variantId ?? null, stock }, 200);
		await audit(c, "inventory.adjusted", variantId ? "variant" : "product", variantId ?? productId, { delta }, { stock });
		return c.json({ productId, variantId: variantId ?? null, stock }, 200);
	})
	// variants
	.openapi(routes.listVariants, async (c) =>
		c.json({ data: (await store(c).catalogue.listVariants(c.req.valid("param").productId)).map(strip) }, 200),
	)
	.openapi(routes.createVariant, async (c) =>
		created(
			c,
			"variant",
			await store(c).catalogue.createVariant(c.req.valid("param").productId, c.req.valid("json"), idempotentCommit(c, 201, strip)),
		),
	)
	.openapi(routes.updateVariant, async (c) => {
		const { productId, variantId } = c.req.valid("param");
		const row = await store(c).catalogue.updateVariant(productId, variantId, c.req.valid("json"), ifMatch(c));
		await audit(c, "variant.updated", "variant", row.id, c.req.valid("json"), strip(row));
		return rowJson(c, row, 200);
	})
	.openapi(routes.deleteVariant, async (c) => {
		const { productId, variantId } = c.req.valid("param");
		await store(c).catalogue.deleteVariant(productId, variantId, ifMatch(c));
		return deleted(c, "variant", variantId);
	})
	// orders
	.openapi(routes.listOrders, async (c) => c.json(stripAll(await store(c).orders.listOrders(c.req.valid("query"))), 200))
	.openapi(routes.createOrder, async (c) => {
		const order = await store(c).orders.createOrder(c.req.valid("json"), c.get("auth").userId, idempotentCommit(c, 201, detail));
		const summary = { orderId: order.id, status: order.status, totalMinor: order.totalMinor, currency: order.currency };
		await audit(c, "order.created", "order", order.id, undefined, summary, { type: "order.created", data: summary });
		return c.json(detail(order), 201, { ETag: etag(order.version), ...createdLocation(c, order.id) });
	})
	.openapi(routes.getOrder, async (c) => {
		const order = await store(c).orders.getOrder(c.req.valid("param").orderId);
		return c.json(detail(order), 200, { ETag: etag(order.version) });
	})
	.openapi(routes.transitionOrder, async (c) => {
		const { status, note } = c.req.valid("json");
		const order = await store(c)
			.orders.transitionOrder(c.req.valid("param").orderId, status, c.get("auth").userId, note, ifMatch(c), idempotentCommit(c, 200, detail));
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
