import type { Context } from "hono";
import { createdLocation, createRouter } from "../../lib/create-app";
import type { AppEnv } from "../../env";
import { etag, ifMatchVersions } from "../../lib/etag";
import { strip } from "../../services/store/shared";
import { TenantStore } from "../../services/tenant-store";
import { orderView } from "../../services/views";
import { idempotencyClaim, idempotentCommit } from "../../middleware/idempotency";
import { withChangeLog } from "../../middleware/change-log";
import * as routes from "./store.routes";

/**
 * The store for the organization the caller was authorized for (never the raw path parameter). Searches
 * use the tenant store's products_search (schema v3) when the request runs in a store that has it.
 */
const store = (c: Context<AppEnv>) =>
	new TenantStore(c.get("db"), c.get("access").organization.id, { searchIndex: (c.get("store")?.schemaVersion() ?? 0) >= 3 });
const ifMatch = (c: Context<AppEnv>) => ifMatchVersions(c.req.header("if-match"));

const stripAll = <T extends { organizationId: string }>(p: { data: T[]; nextCursor: string | null }) => ({
	data: p.data.map(strip),
	nextCursor: p.nextCursor,
});
/** A row response: the row without organizationId, its version as ETag. */
type Row = { id: string; organizationId: string; version: number };
/** A row with its ETag; a 201 also carries the created resource's Location. */
const rowJson = <T extends Row, S extends 200 | 201>(c: Context<AppEnv>, row: T, status: S) =>
	c.json(strip(row), status, { ETag: etag(row.version), ...(status === 201 ? createdLocation(c, row.id) : {}) });
const detail = orderView;

export const storeRouter = createRouter()
	// categories
	.openapi(routes.listCategories, async (c) => c.json(stripAll(await store(c).catalogue.listCategories(c.req.valid("query"))), 200))
	.openapi(routes.createCategory, async (c) => {
		const row = await withChangeLog(c, (log) => store(c).catalogue.createCategory(c.req.valid("json"), log, idempotentCommit(c, 201, strip)));
		return rowJson(c, row, 201);
	})
	.openapi(routes.getCategory, async (c) => rowJson(c, await store(c).catalogue.getCategory(c.req.valid("param").categoryId), 200))
	.openapi(routes.updateCategory, async (c) => {
		const id = c.req.valid("param").categoryId;
		const row = await withChangeLog(c, (log) => store(c).catalogue.updateCategory(id, c.req.valid("json"), log, ifMatch(c)));
		return rowJson(c, row, 200);
	})
	.openapi(routes.deleteCategory, async (c) => {
		const id = c.req.valid("param").categoryId;
		await withChangeLog(c, (log) => store(c).catalogue.deleteCategory(id, log, ifMatch(c)));
		return c.body(null, 204);
	})
	// products
	.openapi(routes.listProducts, async (c) => c.json(stripAll(await store(c).catalogue.listProducts(c.req.valid("query"))), 200))
	.openapi(routes.createProduct, async (c) => {
		const row = await withChangeLog(c, (log) => store(c).catalogue.createProduct(c.req.valid("json"), log, idempotentCommit(c, 201, strip)));
		return rowJson(c, row, 201);
	})
	.openapi(routes.getProduct, async (c) => rowJson(c, await store(c).catalogue.getProduct(c.req.valid("param").productId), 200))
	.openapi(routes.updateProduct, async (c) => {
		const id = c.req.valid("param").productId;
		const row = await withChangeLog(c, (log) => store(c).catalogue.updateProduct(id, c.req.valid("json"), log, ifMatch(c)));
		return rowJson(c, row, 200);
	})
	.openapi(routes.deleteProduct, async (c) => {
		const id = c.req.valid("param").productId;
		await withChangeLog(c, (log) => store(c).catalogue.deleteProduct(id, log, ifMatch(c)));
		return c.body(null, 204);
	})
	.openapi(routes.adjustInventory, async (c) => {
		const { productId } = c.req.valid("param");
		const { delta, variantId } = c.req.valid("json");
		const { stock } = await withChangeLog(c, (log) => store(c).inventory.adjustStock(productId, delta, log, variantId, idempotencyClaim(c)));
		return c.json({ productId, variantId: variantId ?? null, stock }, 200);
	})
	// variants
	.openapi(routes.listVariants, async (c) =>
		c.json({ data: (await store(c).catalogue.listVariants(c.req.valid("param").productId)).map(strip) }, 200),
	)
	.openapi(routes.createVariant, async (c) => {
		const { productId } = c.req.valid("param");
		const row = await withChangeLog(c, (log) =>
			store(c).catalogue.createVariant(productId, c.req.valid("json"), log, idempotentCommit(c, 201, strip)),
		);
		return rowJson(c, row, 201);
	})
	.openapi(routes.getVariant, async (c) => {
		const { productId, variantId } = c.req.valid("param");
		return rowJson(c, await store(c).catalogue.getVariant(productId, variantId), 200);
	})
	.openapi(routes.updateVariant, async (c) => {
		const { productId, variantId } = c.req.valid("param");
		const row = await withChangeLog(c, (log) => store(c).catalogue.updateVariant(productId, variantId, c.req.valid("json"), log, ifMatch(c)));
		return rowJson(c, row, 200);
	})
	.openapi(routes.deleteVariant, async (c) => {
		const { productId, variantId } = c.req.valid("param");
		await withChangeLog(c, (log) => store(c).catalogue.deleteVariant(productId, variantId, log, ifMatch(c)));
		return c.body(null, 204);
	})
	// orders
	.openapi(routes.listOrders, async (c) => c.json(stripAll(await store(c).orders.listOrders(c.req.valid("query"))), 200))
	.openapi(routes.createOrder, async (c) => {
		const order = await withChangeLog(c, (log) =>
			store(c).orders.createOrder(c.req.valid("json"), c.get("auth").userId, log, idempotentCommit(c, 201, detail)),
		);
		return c.json(detail(order), 201, { ETag: etag(order.version), ...createdLocation(c, order.id) });
	})
	.openapi(routes.getOrder, async (c) => {
		const order = await store(c).orders.getOrder(c.req.valid("param").orderId);
		return c.json(detail(order), 200, { ETag: etag(order.version) });
	})
	.openapi(routes.transitionOrder, async (c) => {
		const { status, note } = c.req.valid("json");
		const id = c.req.valid("param").orderId;
		const order = await withChangeLog(c, (log) =>
			store(c).orders.transitionOrder(id, status, c.get("auth").userId, log, note, ifMatch(c), idempotentCommit(c, 200, detail)),
		);
		return c.json(detail(order), 200, { ETag: etag(order.version) });
	});
