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

/**
 * Holds the tenant store's next D1 statement whose SQL `matches` (a read of the directory) until `release()`;
 * `reached` resolves once the store waits on it. For a change that lands while the store reads: D1 sits
 * outside the object, so the hold is at the object's binding, as a slow network would be.
 * @example const held = await holdStoreD1(t.orgId, (q) => q.includes("AS ahead"));
 */
export async function holdStoreD1(orgId: string, matches: (query: string) => boolean): Promise<{ reached: Promise<void>; release: () => void }> {
	let release: () => void = () => {};
	let reach: () => void = () => {};
	const gate = new Promise<void>((r) => (release = r));
	const reached = new Promise<void>((r) => (reach = r));
	await runInDurableObject(storeOf(orgId), (instance) => {
		const o = instance as unknown as { env: { DB: D1Database } };
		let armed = true;
		const held = (st: D1PreparedStatement): D1PreparedStatement =>
			new Proxy(st, {
				get(target, prop) {
					if (prop === "bind") return (...values: unknown[]) => held(target.bind(...values));
					const f = Reflect.get(target, prop) as unknown;
					if (typeof f !== "function") return f;
					return async (...args: unknown[]) => {
						reach();
						await gate;
						return (f as (...a: unknown[]) => unknown).apply(target, args);
					};
				},
			});
		const DB = new Proxy(o.env.DB, {
			get(target, prop) {
				if (prop !== "prepare") return Reflect.get(target, prop);
				return (query: string) => {
					const statement = target.prepare(query);
					if (!armed || !matches(query)) return statement;
					armed = false;
					return held(statement);
				};
			},
		});
		Object.defineProperty(o, "env", { value: { ...o.env, DB }, configurable: true });
	});
	return { reached, release };
}
