import { createRoute, type RouteConfig, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { requirePermission } from "../../middleware/authorize";
import { idempotency } from "../../middleware/idempotency";
import { tenantMiddleware } from "../../middleware/tenant";
import { CursorQuery, IdempotencyKeyHeader, jsonContent, orgErrors, problem } from "../../openapi";

// --- schemas ---------------------------------------------------------------------------------

const id = (name: string, example: string) =>
	z
		.string()
		.min(1)
		.max(128)
		.openapi({ param: { name, in: "path" }, example });
const OrgParam = { orgId: id("orgId", "org_2abc") };
const name = z.string().trim().min(1).max(200);
const sku = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, "letters, digits, . _ - (max 64)");
/**
 * Money bounds: every amount stays a safe integer. A unit price is at most 10^11 minor units, a line's
 * quantity at most 1000 and an order at most 50 lines, so a total is at most 50 x 1000 x 10^11 = 5 x 10^15
 * minor units, below Number.MAX_SAFE_INTEGER (about 9.007 x 10^15).
 */
const MAX_PRICE_MINOR = 100_000_000_000;
const MAX_QUANTITY = 1000;
const MAX_ORDER_LINES = 50;
const MAX_TOTAL_MINOR = MAX_ORDER_LINES * MAX_QUANTITY * MAX_PRICE_MINOR;
const money = z
	.number()
	.int()
	.min(0)
	.max(MAX_PRICE_MINOR)
	.openapi({
		description: OPENAPI_TEXT ? `Price in the currency's smallest unit (paise, cents), at most ${MAX_PRICE_MINOR} (10^11): with at most ${MAX_QUANTITY} per line and ${MAX_ORDER_LINES} lines an order total stays below 2^53` : undefined,
	});
/** The ISO 4217 codes the runtime's ICU knows (about 300, historic ones included; built on first use), so "ZZZ" is refused. */
let currencies: Set<string> | undefined;
const currency = z
	.string()
	.regex(/^[A-Z]{3}$/, { message: "ISO 4217 code, e.g. INR", abort: true })
	.refine((c) => (currencies ??= new Set(Intl.supportedValuesOf("currency"))).has(c), "not an ISO 4217 currency code");
const productStatus = z.enum(["draft", "active", "archived"]);
const orderStatus = z.enum(["pending", "paid", "fulfilled", "cancelled"]);
/**
 * A PATCH body: every field optional and without defaults (a field that is not sent is not changed),
 * unknown fields refused, and at least one field required, shown in the document as minProperties: 1.
 */
const patchOf = <T extends z.ZodRawShape>(shape: T) =>
	z
		.strictObject(shape)
		.partial()
		.refine((v) => Object.keys(v).length > 0, { message: "at least one field is required" })
		.openapi({ minProperties: 1 });

const CategorySchema = z
	.object({
		id: z.string(),
		name: z.string(),
		slug: z.string(),
		version: z.number().int(),
		createdAt: z.number().int(),
		updatedAt: z.number().int(),
	})
	.openapi("Category");
export const ProductSchema = z
	.object({
		id: z.string(),
		categoryId: z.string().nullable(),
		name: z.string(),
		sku: z.string(),
		description: z.string().nullable(),
		priceMinor: z.number().int().openapi({ description: OPENAPI_TEXT ? "Price in the currency's smallest unit (paise, cents)" : undefined }),
		currency: z.string(),
		status: productStatus,
		stock: z.number().int(),
		version: z.number().int(),
		createdAt: z.number().int(),
		updatedAt: z.number().int(),
	})
	.openapi("Product");
const VariantSchema = z
	.object({
		id: z.string(),
		productId: z.string(),
		name: z.string(),
		sku: z.string(),
		priceMinor: z.number().int().nullable(),
		stock: z.number().int(),
		version: z.number().int(),
		createdAt: z.number().int(),
		updatedAt: z.number().int(),
	})
	.openapi("Variant");
const OrderItemSchema = z
	.object({
		id: z.string(),
		productId: z.string(),
		variantId: z.string().nullable(),
		name: z.string(),
		sku: z.string(),
		unitPriceMinor: z.number().int(),
		quantity: z.number().int(),
		lineTotalMinor: z.number().int().openapi({ description: OPENAPI_TEXT ? "unitPriceMinor x quantity" : undefined }),
	})
	.openapi("OrderItem");
const OrderSchema = z
	.object({
		id: z.string(),
		status: orderStatus,
		currency: z.string(),
		totalMinor: z
			.number()
			.int()
			.min(0)
			.max(MAX_TOTAL_MINOR)
			.openapi({ description: OPENAPI_TEXT ? `Sum of the lines, computed exactly; an order above ${MAX_TOTAL_MINOR} (5 x 10^15) is refused` : undefined }),
		customerEmail: z.string().nullable(),
		createdBy: z.string(),
		version: z.number().int(),
		createdAt: z.number().int(),
		updatedAt: z.number().int(),
	})
	.openapi("Order");
const OrderDetailSchema = OrderSchema.extend({
	items: z.array(OrderItemSchema),
	history: z.array(
		z.object({
			fromStatus: z.string().nullable(),
			toStatus: z.string(),
			changedBy: z.string(),
			note: z.string().nullable(),
			at: z.number().int(),
		}),
	),
}).openapi("OrderDetail");

const pageOf = <T extends z.ZodType>(item: T, n: string) =>
	z.object({ data: z.array(item), nextCursor: z.string().nullable() }).openapi(n);

const slug = z.string().regex(/^[a-z0-9-]{1,100}$/, "lowercase letters, digits and -");
const CategoryCreate = z.strictObject({ name, slug });
const CategoryPatch = patchOf({ name, slug });
const stock = z.number().int().min(0).max(1_000_000_000);
const productFields = {
	name,
	sku,
	description: z.string().max(5000).nullable(),
	priceMinor: money,
	currency,
	status: productStatus,
	categoryId: z.string().min(1).max(128).nullable(),
};
const ProductCreate = z.strictObject({
	...productFields,
	description: productFields.description.optional(),
	status: productStatus.default("draft"),
	stock: stock.default(0),
	categoryId: productFields.categoryId.optional(),
});
/** Stock changes go through /inventory. */
const ProductPatch = patchOf(productFields);
const variantFields = { name, sku, priceMinor: money.nullable() };
const VariantCreate = z.strictObject({ ...variantFields, priceMinor: variantFields.priceMinor.optional(), stock: stock.default(0) });
const VariantPatch = patchOf(variantFields);
const InventoryAdjust = z.strictObject({
	delta: z
		.number()
		.int()
		.min(-1_000_000)
		.max(1_000_000)
		.openapi({ description: OPENAPI_TEXT ? "Change of stock; 0 changes nothing and answers the current stock" : undefined }),
	variantId: z.string().min(1).max(128).optional(),
});
const OrderCreate = z.strictObject({
	items: z
		.array(
			z.strictObject({
				productId: z.string().min(1).max(128),
				variantId: z.string().min(1).max(128).optional(),
				quantity: z.number().int().min(1).max(MAX_QUANTITY),
			}),
		)
		.min(1)
		.max(MAX_ORDER_LINES)
		.openapi({ description: OPENAPI_TEXT ? `At most ${MAX_ORDER_LINES} lines; lines of the same product (and variant) are merged` : undefined }),
	customerEmail: z.email().max(320).nullable().optional(),
});
const OrderTransition = z.strictObject({ status: orderStatus, note: z.string().max(500).optional() });

const IfMatch = z.object({
	"if-match": z
		.string()
		.max(100)
		.optional()
		.openapi({
			description:
				OPENAPI_TEXT ? 'Optional precondition: the ETag of a previous read, e.g. "3", or a list of them ("3", "4"; a weak W/"3" counts as "3"). ' +
				"With it the write applies only while the resource is still at one of those versions, else 412 (so does a value that names no version of ours); `*` or no " +
				"If-Match makes the write unconditional (last write wins). Never required: this API does not answer 428." : undefined,
		}),
});
const etagHeader = { ETag: { schema: { type: "string" as const }, description: OPENAPI_TEXT ? "Version of the resource, for If-Match" : undefined } };
const ok = <T extends z.ZodType>(schema: T, description: string, withEtag = false) => ({
	...jsonContent(schema, description),
	...(withEtag ? { headers: etagHeader } : {}),
});
const writeErrors = {
	...orgErrors,
	409: problem("Conflict: duplicate sku/slug, insufficient stock, Idempotency-Key reuse, invalid transition"),
	412: problem("If-Match does not match the current ETag"),
};

/** createRoute for tenant routes: auth, membership, tenant rate limit, permission (and Idempotency-Key on POST). */
function tenantRoute<const R extends Omit<RouteConfig, "middleware" | "security">>(permission: string, config: R) {
	const middleware: MiddlewareHandler[] = tenantMiddleware(requirePermission(permission));
	if (config.method === "post") middleware.push(idempotency());
	return createRoute({
		...config,
		security: [{ bearer: [] }],
		middleware,
		tags: [config.path.includes("/orders") ? "orders" : "catalogue"],
	});
}

const body = <T extends z.ZodType>(schema: T) => ({ required: true, content: { "application/json": { schema } } });
const R = "org:products:read";
const W = "org:products:write";
const base = "/api/orgs/{orgId}";

// --- categories --------------------------------------------------------------------------------

export const listCategories = tenantRoute(R, {
	method: "get",
	path: `${base}/categories`,
	summary: OPENAPI_TEXT ? "List categories" : undefined,
	request: { params: z.object(OrgParam), query: CursorQuery },
	responses: { 200: ok(pageOf(CategorySchema, "CategoryPage"), "A page of categories"), ...orgErrors },
});
export const createCategory = tenantRoute(W, {
	method: "post",
	path: `${base}/categories`,
	summary: OPENAPI_TEXT ? "Create a category" : undefined,
	request: { params: z.object(OrgParam), headers: IdempotencyKeyHeader, body: body(CategoryCreate) },
	responses: { 201: ok(CategorySchema, "Created", true), ...writeErrors },
});
const categoryParams = z.object({ ...OrgParam, categoryId: id("categoryId", "cat_1") });
export const getCategory = tenantRoute(R, {
	method: "get",
	path: `${base}/categories/{categoryId}`,
	summary: OPENAPI_TEXT ? "Get a category" : undefined,
	request: { params: categoryParams },
	responses: { 200: ok(CategorySchema, "The category", true), ...orgErrors },
});
export const updateCategory = tenantRoute(W, {
	method: "patch",
	path: `${base}/categories/{categoryId}`,
	summary: OPENAPI_TEXT ? "Update a category" : undefined,
	request: { params: categoryParams, headers: IfMatch, body: body(CategoryPatch) },
	responses: { 200: ok(CategorySchema, "Updated", true), ...writeErrors },
});
export const deleteCategory = tenantRoute(W, {
	method: "delete",
	path: `${base}/categories/{categoryId}`,
	summary: OPENAPI_TEXT ? "Delete a category (its products become uncategorised)" : undefined,
	request: { params: categoryParams, headers: IfMatch },
	responses: { 204: { description: OPENAPI_TEXT ? "Deleted" : undefined }, ...writeErrors },
});

// --- products ----------------------------------------------------------------------------------

export const listProducts = tenantRoute(R, {
	method: "get",
	path: `${base}/products`,
	summary: OPENAPI_TEXT ? "List products" : undefined,
	request: {
		params: z.object(OrgParam),
		query: CursorQuery.extend({
			status: productStatus.optional(),
			categoryId: z.string().max(128).optional(),
			sku: z.string().max(64).optional(),
			q: z
				.string()
				.max(100)
				.optional()
				.openapi({ description: OPENAPI_TEXT ? "Substring of the name, case-insensitive (any characters, taken literally)" : undefined }),
		}),
	},
	responses: { 200: ok(pageOf(ProductSchema, "ProductPage"), "A page of products"), ...orgErrors },
});
export const createProduct = tenantRoute(W, {
	method: "post",
	path: `${base}/products`,
	summary: OPENAPI_TEXT ? "Create a product" : undefined,
	request: { params: z.object(OrgParam), headers: IdempotencyKeyHeader, body: body(ProductCreate) },
	responses: { 201: ok(ProductSchema, "Created", true), ...writeErrors },
});
const productParams = z.object({ ...OrgParam, productId: id("productId", "prd_1") });
export const getProduct = tenantRoute(R, {
	method: "get",
	path: `${base}/products/{productId}`,
	summary: OPENAPI_TEXT ? "Get a product" : undefined,
	request: { params: productParams },
	responses: { 200: ok(ProductSchema, "The product", true), ...orgErrors },
});
export const updateProduct = tenantRoute(W, {
	method: "patch",
	path: `${base}/products/{productId}`,
	summary: OPENAPI_TEXT ? "Update a product (stock changes go through /inventory)" : undefined,
	request: { params: productParams, headers: IfMatch, body: body(ProductPatch) },
	responses: { 200: ok(ProductSchema, "Updated", true), ...writeErrors },
});
export const deleteProduct = tenantRoute(W, {
	method: "delete",
	path: `${base}/products/{productId}`,
	summary: OPENAPI_TEXT ? "Delete a product and its variants" : undefined,
	request: { params: productParams, headers: IfMatch },
	responses: { 204: { description: OPENAPI_TEXT ? "Deleted" : undefined }, ...writeErrors },
});
export const adjustInventory = tenantRoute(W, {
	method: "post",
	path: `${base}/products/{productId}/inventory`,
	summary: OPENAPI_TEXT ? "Adjust stock atomically by a delta (never below zero)" : undefined,
	request: { params: productParams, headers: IdempotencyKeyHeader, body: body(InventoryAdjust) },
	responses: {
		200: ok(
			z.object({ productId: z.string(), variantId: z.string().nullable(), stock: z.number().int() }).openapi("Inventory"),
			"New stock",
		),
		...writeErrors,
	},
});

// --- variants ----------------------------------------------------------------------------------

export const listVariants = tenantRoute(R, {
	method: "get",
	path: `${base}/products/{productId}/variants`,
	summary: OPENAPI_TEXT ? "List a product's variants" : undefined,
	request: { params: productParams },
	responses: { 200: ok(z.object({ data: z.array(VariantSchema) }).openapi("VariantList"), "Variants"), ...orgErrors },
});
export const createVariant = tenantRoute(W, {
	method: "post",
	path: `${base}/products/{productId}/variants`,
	summary: OPENAPI_TEXT ? "Create a variant" : undefined,
	request: { params: productParams, headers: IdempotencyKeyHeader, body: body(VariantCreate) },
	responses: { 201: ok(VariantSchema, "Created", true), ...writeErrors },
});
const variantParams = z.object({ ...OrgParam, productId: id("productId", "prd_1"), variantId: id("variantId", "var_1") });
export const getVariant = tenantRoute(R, {
	method: "get",
	path: `${base}/products/{productId}/variants/{variantId}`,
	summary: OPENAPI_TEXT ? "Get a variant (its ETag for If-Match)" : undefined,
	request: { params: variantParams },
	responses: { 200: ok(VariantSchema, "The variant", true), ...orgErrors },
});
export const updateVariant = tenantRoute(W, {
	method: "patch",
	path: `${base}/products/{productId}/variants/{variantId}`,
	summary: OPENAPI_TEXT ? "Update a variant" : undefined,
	request: { params: variantParams, headers: IfMatch, body: body(VariantPatch) },
	responses: { 200: ok(VariantSchema, "Updated", true), ...writeErrors },
});
export const deleteVariant = tenantRoute(W, {
	method: "delete",
	path: `${base}/products/{productId}/variants/{variantId}`,
	summary: OPENAPI_TEXT ? "Delete a variant" : undefined,
	request: { params: variantParams, headers: IfMatch },
	responses: { 204: { description: OPENAPI_TEXT ? "Deleted" : undefined }, ...writeErrors },
});

// --- orders ------------------------------------------------------------------------------------

export const listOrders = tenantRoute("org:orders:read", {
	method: "get",
	path: `${base}/orders`,
	summary: OPENAPI_TEXT ? "List orders" : undefined,
	request: { params: z.object(OrgParam), query: CursorQuery.extend({ status: orderStatus.optional() }) },
	responses: { 200: ok(pageOf(OrderSchema, "OrderPage"), "A page of orders"), ...orgErrors },
});
export const createOrder = tenantRoute("org:orders:write", {
	method: "post",
	path: `${base}/orders`,
	summary: OPENAPI_TEXT ? "Create an order (items copy name, sku and price; stock is taken atomically)" : undefined,
	request: { params: z.object(OrgParam), headers: IdempotencyKeyHeader, body: body(OrderCreate) },
	responses: { 201: ok(OrderDetailSchema, "Created", true), ...writeErrors },
});
const orderParams = z.object({ ...OrgParam, orderId: id("orderId", "ord_1") });
export const getOrder = tenantRoute("org:orders:read", {
	method: "get",
	path: `${base}/orders/{orderId}`,
	summary: OPENAPI_TEXT ? "Get an order with items and status history" : undefined,
	request: { params: orderParams },
	responses: { 200: ok(OrderDetailSchema, "The order", true), ...orgErrors },
});
export const transitionOrder = tenantRoute("org:orders:write", {
	method: "post",
	path: `${base}/orders/{orderId}/status`,
	summary: OPENAPI_TEXT ? "Move an order: pending→paid|cancelled, paid→fulfilled|cancelled" : undefined,
	request: { params: orderParams, headers: IfMatch.merge(IdempotencyKeyHeader), body: body(OrderTransition) },
	responses: { 200: ok(OrderDetailSchema, "Updated", true), ...writeErrors },
});
