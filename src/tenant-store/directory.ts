import type { Env } from "../env";
import { ApiError } from "../errors";
import { TtlCache } from "../lib/ttl-cache";

/**
 * Where a tenant's data is served from, as the directory (D1 `organizations`) says:
 * - "store": its own SQLite Durable Object (every organization created since the tenant stores shipped;
 *   `store_state` NULL or 'store');
 * - "d1": the shared D1 tables, until the upgrade job (tenant-store/upgrade.ts) moves it;
 * - "migrating": being moved — reads still come from the shared tables, writes answer 503 Retry-After;
 * - "deleted": offboarded by an operator (store wiped, directory row kept).
 */
export type StoreState = "store" | "d1" | "migrating" | "deleted";

export interface StoreRoute {
	state: StoreState;
	/** The store's jurisdiction: "eu" keeps it in the EU (Durable Object jurisdiction), "default" anywhere. */
	region: "default" | "eu";
	/** The directory has no row for the organization (yet): a (new) store tenant, or an id nobody made. */
	unknown?: true;
}

// A route is final once it says "store" (a tenant never goes back): kept for 10 minutes. Other states
// change with the upgrade job, which waits longer than this between its phases (see upgrade.ts).
const FINAL_TTL_MS = 600_000;
export const TRANSIENT_TTL_MS = 5_000;
const routes = new TtlCache<string, StoreRoute>(50_000);

/** Forgets the cached route of one organization (the upgrade job and operator deletion call it). */
export function forgetStoreRoute(orgId: string): void {
	routes.delete(orgId);
}

/**
 * The organization's store_state (as stored) and data_region (a NOT NULL column of "default" or "eu"), read
 * from D1 now (no cache); null when unknown.
 */
export function readPlacement(db: D1Database, orgId: string) {
	return db
		.prepare("SELECT store_state AS state, data_region AS region FROM organizations WHERE id = ?")
		.bind(orgId)
		.first<{ state: string | null; region: StoreRoute["region"] }>();
}

/** The organization's route; an organization the directory does not know yet is a (new) store tenant. */
export async function storeRoute(env: Pick<Env, "DB">, orgId: string): Promise<StoreRoute> {
	const hit = routes.get(orgId);
	if (hit) return hit;
	const row = await readPlacement(env.DB, orgId);
	const state: StoreState = row?.state === "d1" || row?.state === "migrating" || row?.state === "deleted" ? row.state : "store";
	const route: StoreRoute = row ? { state, region: row.region ?? "default" } : { state, region: "default", unknown: true };
	// An unknown organization is not cached: its directory row may arrive with its region any moment.
	if (row) routes.set(orgId, route, state === "store" ? FINAL_TTL_MS : TRANSIENT_TTL_MS);
	return route;
}

// Whether this runtime refused jurisdiction("eu") as unimplemented (workerd: wrangler dev, Miniflare,
// the tests); module scope: it is a property of the runtime, the same for every request.
let jurisdictionsUnimplemented = false;

/** A stub of the tenant store object (typed from the binding, so this module does not import the object). */
export type StoreStub = ReturnType<Env["TENANT_STORE"]["get"]>;

/**
 * The tenant's store object: named by the organization id, in the EU jurisdiction for region "eu"
 * (an object's jurisdiction is fixed when it is created, so the region is too once it holds data).
 * workerd does not implement jurisdictions ("Jurisdiction restrictions are not implemented in
 * workerd"): there, and only on that error, an EU tenant's store is the object named `eu:<orgId>`, a
 * different object from the one its id names, so routing behaves as deployed (README, "Residency").
 */
export function storeStub(env: Pick<Env, "TENANT_STORE">, orgId: string, region: StoreRoute["region"]): StoreStub {
	if (region === "eu" && !jurisdictionsUnimplemented) {
		try {
			const eu = env.TENANT_STORE.jurisdiction("eu");
			return eu.get(eu.idFromName(orgId));
		} catch (err) {
			if (!(err instanceof Error && err.message.includes("not implemented in workerd"))) throw err;
			jurisdictionsUnimplemented = true;
		}
	}
	return env.TENANT_STORE.get(env.TENANT_STORE.idFromName(region === "eu" ? `eu:${orgId}` : orgId));
}

/**
 * What a store throws when called while it does not serve (TenantStoreObject.live: it imports, or was
 * retired by a data region change): the caller's route is stale.
 */
export const REFUSED = "store not serving";

/**
 * `call` on the tenant's store at `route` (the caller's, usually cached). A store that does not serve
 * refused it (REFUSED, before doing anything): this isolate's route is stale, so it is forgotten and
 * read from the directory again; if the tenant moved to another region, `call` goes to that store.
 * Otherwise (the move not committed yet, an import) 503 Retry-After 1, as for a store the runtime
 * reports overloaded (too much queued for it: sending again at once would only add to the queue) or a
 * call it marks retryable (a lost connection, an object reset by a deploy: transient()): the
 * tenant-events consumer retries the message, a rate-limit take fails open (reads) or closed (writes).
 * @example await storeCall(env, orgId, await storeRoute(env, orgId), (s) => s.usageSummary())
 */
export async function storeCall<T>(
	env: Pick<Env, "DB" | "TENANT_STORE">,
	orgId: string,
	route: StoreRoute,
	call: (stub: StoreStub) => Promise<T>,
): Promise<T> {
	try {
		return await call(storeStub(env, orgId, route.region));
	} catch (err) {
		if (String(err).includes(REFUSED)) {
			forgetStoreRoute(orgId);
			const now = await storeRoute(env, orgId);
			if (now.state === "store" && now.region !== route.region) return storeCall(env, orgId, now, call);
			if (now.state === "deleted") throw new ApiError("NOT_FOUND", "organization not found");
		} else if (!transient(err)) throw err;
		throw new ApiError("UPSTREAM_UNAVAILABLE", "store unavailable, retry shortly", { headers: { "Retry-After": "1" } });
	}
}

/**
 * Errors the runtime marks as passing (Durable Objects: `overloaded`, too much queued for the object;
 * `retryable`, a connection lost or an object reset by a deploy): a 503 to try again shortly, not a 500.
 */
function transient(err: unknown): boolean {
	const e = err as { overloaded?: boolean; retryable?: boolean } | null;
	return e?.overloaded === true || e?.retryable === true;
}

/**
 * Tells a store tenant's store that its directory facts changed (plan, limits, suspension, members),
 * so its next request reads them again; nothing for a tenant still on the shared tables.
 */
export async function directoryChanged(env: Pick<Env, "DB" | "TENANT_STORE">, orgId: string): Promise<void> {
	const route = await storeRoute(env, orgId);
	if (route.state === "store") await storeCall(env, orgId, route, (s) => s.directoryChanged());
}

/**
 * A data-region change (an operator's PATCH, Clerk's first event for a token-made row): `apply` gets whether
 * the tenant's store holds a record, asked with `moveTo` (storeHasData: another region retires the store if
 * it holds none, in the same step as the check), and makes the directory change. Whatever its outcome, the
 * store the directory then names serves (tried twice: a store left retired refuses the tenant). Without
 * `moveTo` it only asks whether the store holds a record.
 */
export async function changeRegion<T>(
	env: Pick<Env, "DB" | "TENANT_STORE">,
	orgId: string,
	moveTo: StoreRoute["region"] | undefined,
	apply: (inStore: boolean | undefined) => Promise<T>,
): Promise<T> {
	try {
		return await apply(await storeHasData(env, orgId, moveTo));
	} finally {
		if (moveTo !== undefined) await storeHasData(env, orgId, null).catch(() => storeHasData(env, orgId, null));
	}
}

/**
 * Whether a store tenant's store holds any record (undefined for a tenant on the shared tables: the
 * caller asks D1). The route is read from the directory, not this isolate's cache: after a region
 * change elsewhere, the store asked is the one the directory names. A tenant without a store has none.
 * With `moveTo` (PATCH dataRegion; TenantStoreObject.retire): another region retires that store if it
 * holds no record, in the same step as the check; its own region, or null, reinstates it.
 */
export async function storeHasData(
	env: Pick<Env, "DB" | "TENANT_STORE">,
	orgId: string,
	moveTo?: StoreRoute["region"] | null,
): Promise<boolean | undefined> {
	forgetStoreRoute(orgId);
	const route = await storeRoute(env, orgId);
	if (route.state !== "store") return undefined;
	const stub = storeStub(env, orgId, route.region);
	return moveTo === undefined ? stub.hasRecords() : stub.retire(moveTo !== null && moveTo !== route.region);
}
