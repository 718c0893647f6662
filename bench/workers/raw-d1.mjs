// Raw D1 baseline of `npm run bench -- cost`: the products list's SELECT on D1, no framework.
import { page, PRODUCTS_SELECT } from "./products-select.mjs";

export default {
	async fetch(request, env) {
		const limit = Number(new URL(request.url).searchParams.get("limit") ?? 20);
		const { results } = await env.DB.prepare(PRODUCTS_SELECT).bind("org_bench", limit + 1).all();
		return Response.json(page(results, limit));
	},
};
