import { type DrizzleD1Database, drizzle } from "drizzle-orm/d1";
import * as schema from "./schema";

export type Database = DrizzleD1Database<typeof schema> & { $client: D1Database };

/** Built per request / per batch from the binding: bindings only exist on each invocation's env. */
export function createDb(d1: D1Database): Database {
	return drizzle(d1, { schema });
}
