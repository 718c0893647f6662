import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";

/** The tenant's store object (tenant-store/object.ts), as the Worker addresses it (default region). */
export const storeOf = (orgId: string) => env.TENANT_STORE.get(env.TENANT_STORE.idFromName(orgId));

/**
 * Rows of a query run in the tenant's store database: what a test reads or changes directly where it
 * used to use env.DB for tenant tables.
 * @example const [p] = await storeSql<{ n: number }>(t.orgId, "SELECT count(*) AS n FROM products");
 */
export async function storeSql<T = Record<string, unknown>>(orgId: string, query: string, ...params: unknown[]): Promise<T[]> {
	return runInDurableObject(storeOf(orgId), (_obj, state) => state.storage.sql.exec(query, ...(params as SqlStorageValue[])).toArray() as T[]);
}

/** Runs the store's alarm now if one is set (outbox relay, idempotency purge); true when it ran. */
export function runStoreAlarm(orgId: string): Promise<boolean> {
	return runDurableObjectAlarm(storeOf(orgId));
}
