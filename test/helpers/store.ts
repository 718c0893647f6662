import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { vi as Vi } from "vitest";
import type { TenantEvent } from "../../src/queue/tenant-events";
import type { TenantStoreObject } from "../../src/tenant-store/object";
import { eventually } from "./wait";

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

/**
 * Runs `fn` inside the tenant's store object, the instance typed as the store (its Env is the Worker's,
 * which the pool's DurableObject constraint does not accept as is).
 */
export function inStore<R>(orgId: string, fn: (store: TenantStoreObject, state: DurableObjectState) => R | Promise<R>): Promise<R> {
	return runInDurableObject(storeOf(orgId), (instance, state) => fn(instance as unknown as TenantStoreObject, state));
}

/** Runs the store's alarm now if one is set (outbox relay, idempotency purge); true when it ran. */
export function runStoreAlarm(orgId: string): Promise<boolean> {
	return runDurableObjectAlarm(storeOf(orgId));
}

/**
 * Lets the store's alarm hand what its outbox holds (deliveries) to the tenant-events queue: runs the
 * alarm now if it is set (the runtime may also have fired it already), then waits until no row is
 * pending. Throws if rows are still pending at the deadline.
 */
export async function drainStore(orgId: string): Promise<void> {
	await runStoreAlarm(orgId);
	const pending = () => storeSql<{ n: number }>(orgId, "SELECT count(*) AS n FROM outbox WHERE status = 'pending'");
	const [left] = await eventually(pending, ([r]) => r?.n === 0);
	if (left?.n !== 0) throw new Error(`the store of ${orgId} still has ${left?.n} pending outbox rows`);
}

/**
 * Records the events the store applies through its own local queue (its requests' relays, its
 * alarm), passing them on unchanged; restored with the test's spies.
 */
export async function recordApplied(vi: typeof Vi, orgId: string): Promise<TenantEvent[]> {
	const applied: TenantEvent[] = [];
	await inStore(orgId, (store) => {
		const apply = store.apply.bind(store);
		vi.spyOn(store, "apply").mockImplementation(async (messages) => {
			applied.push(...messages);
			return apply(messages);
		});
	});
	return applied;
}
