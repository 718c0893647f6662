// Raw tenant-store baseline of `npm run bench -- cost`: a Worker calling one SQLite Durable Object
// (RPC) that runs the products list's SELECT, no framework. The object's schema is the tenant store's
// (src/tenant-store/migrations), so the statement reads the same table and index.
import { DurableObject } from "cloudflare:workers";
import { TENANT_MIGRATIONS } from "../../src/tenant-store/migrations";
import { page, PRODUCTS_SELECT } from "./products-select.mjs";

export class RawStore extends DurableObject {
	constructor(ctx, env) {
		super(ctx, env);
		const exists = ctx.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'products'").toArray().length > 0;
		if (!exists) ctx.storage.transactionSync(() => TENANT_MIGRATIONS.flat().forEach((s) => ctx.storage.sql.exec(s)));
	}

	/** Inserts product rows (column name -> value), as the bench seeds them. */
	seed(rows) {
		for (const r of rows) {
			const cols = Object.keys(r);
			this.ctx.storage.sql.exec(`INSERT INTO products (${cols.join(", ")}) VALUES (${cols.map(() => "?").join(", ")})`, ...cols.map((c) => r[c]));
		}
		return rows.length;
	}

	list(orgId, limit) {
		return page(this.ctx.storage.sql.exec(PRODUCTS_SELECT, orgId, limit + 1).toArray(), limit);
	}
}

export default {
	async fetch(request, env) {
		const store = env.RAW_STORE.get(env.RAW_STORE.idFromName("org_bench"));
		const url = new URL(request.url);
		if (request.method === "POST" && url.pathname === "/seed") return Response.json({ seeded: await store.seed(await request.json()) });
		const limit = Number(url.searchParams.get("limit") ?? 20);
		return Response.json(await store.list("org_bench", limit));
	},
};
