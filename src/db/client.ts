import { type DrizzleD1Database, drizzle } from "drizzle-orm/d1";
import * as schema from "./schema";

export type Database = DrizzleD1Database<typeof schema> & { $client: D1Database };

// One drizzle instance per D1 binding object, for the isolate's lifetime: building one walks the whole
// schema (extractTablesRelationalConfig), a fifth of a light request's CPU when done per request. The
// instance holds no per-request state, and a WeakMap never outlives the binding it is keyed by.
const clients = new WeakMap<D1Database, Database>();

/** The drizzle client of a D1 binding, built on first use and reused while the binding lives. */
export function createDb(d1: D1Database): Database {
	let db = clients.get(d1);
	if (!db) {
		db = drizzle(d1, { schema });
		clients.set(d1, db);
	}
	return db;
}
