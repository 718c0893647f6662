import type { Database } from "../db/client";
import { Catalogue } from "./store/catalogue";
import { Inventory } from "./store/inventory";
import { Orders } from "./store/orders";

/**
 * The only way to read or write tenant-owned tables (categories, products, variants, orders): one
 * module per job under services/store/, each built for one organization id (taken from the resolved
 * membership, never from client input) and scoping every statement by it.
 *
 * @example const store = new TenantStore(db, access.organization.id); await store.catalogue.getProduct(id);
 */
export class TenantStore {
	readonly catalogue: Catalogue;
	readonly inventory: Inventory;
	readonly orders: Orders;

	/** `inStore`: the tables are the tenant's own store (its schema has what D1's lacks, such as products_search). */
	constructor(db: Database, organizationId: string, opts: { inStore?: boolean } = {}) {
		this.catalogue = new Catalogue(db, organizationId, opts.inStore ?? false);
		this.inventory = new Inventory(db, organizationId);
		this.orders = new Orders(db, organizationId);
	}
}
