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

/**
 * Runs `fn` with some vars of the tenant's store overridden (RATE_LIMIT_MODE …): what callWithEnv does
 * for the Worker. The store serves with its own env (its binding's, copied when the object starts),
 * which callWithEnv's overrides do not reach; the store's requests during `fn` run with these vars.
 * @example await withStoreVars(t.orgId, { RATE_LIMIT_MODE: "strict" }, () => call("GET", `${t.base}/products`, …));
 */
export async function withStoreVars<T>(orgId: string, vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
	const swap = (next: (current: Record<string, unknown>) => Record<string, unknown>) =>
		runInDurableObject(storeOf(orgId), (obj) => {
			// The env the object's app runs with (tenant-store/object.ts `storeEnv`); parsed config is cached per env object, so it is replaced, not mutated.
			const o = obj as unknown as { storeEnv?: Record<string, unknown> };
			if (!o.storeEnv) throw new Error("the tenant store no longer keeps its env in `storeEnv`: update withStoreVars");
			const before = o.storeEnv;
			o.storeEnv = next(before);
			return before;
		});
	const original = await swap((current) => ({ ...current, ...vars }));
	try {
		return await fn();
	} finally {
		await swap(() => original);
	}
}
