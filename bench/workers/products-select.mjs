/**
 * The statement the project runs for GET /api/orgs/:orgId/products?limit=20 (drizzle's SQL for
 * services/keyset-page.ts on the first page: organization, ordered by created_at then id, limit + 1),
 * as the raw baselines of `npm run bench -- cost` run it. Bound: organization id, limit + 1.
 */
export const PRODUCTS_SELECT =
	'select "id", "organization_id", "category_id", "name", "sku", "description", "price_minor", "currency", "status", "stock", "version", "created_at", "updated_at" from "products" where "products"."organization_id" = ? order by "products"."created_at" asc, "products"."id" asc limit ?';

/** The page as the raw baselines answer it: up to `limit` rows and a cursor when more remain. */
export function page(rows, limit) {
	const data = rows.slice(0, limit);
	const last = data.at(-1);
	return { data, nextCursor: rows.length > limit && last ? `${last.created_at}:${last.id}` : null };
}
