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

	/** `searchIndex`: the tables are a tenant store's with products_search (schema v3), which D1's lack. */
	constructor(db: Database, organizationId: string, opts: { searchIndex?: boolean } = {}) {
		this.catalogue = new Catalogue(db, organizationId, opts.searchIndex ?? false);
		this.inventory = new Inventory(db, organizationId);
		this.orders = new Orders(db, organizationId);
	}
}
