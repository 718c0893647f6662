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

/** A bookmark as D1 hands them out (hex groups); anything else is ignored, not forwarded to D1. */
const BOOKMARK = /^[0-9a-f]{1,64}(?:-[0-9a-f]{1,64}){2,7}$/i;

/** The client's bookmark when it is well formed (anything else is ignored, never forwarded to D1). */
const wellFormed = (bookmark: string | null | undefined): string | undefined =>
	bookmark && BOOKMARK.test(bookmark) ? bookmark : undefined;

/**
 * A drizzle client on a D1 session (the Sessions API, read replication): reads may come from a
 * replica that has at least the client's last write (its bookmark, `X-D1-Bookmark`), or, without one,
 * from any replica; `primary` starts at the primary (operator paths: they must see the latest state).
 * Returns the client and the session, whose getBookmark() the response hands back to the client.
 */
function sessionDb(d1: D1Database, opts: { bookmark?: string | null; primary?: boolean }): { db: Database; session: D1DatabaseSession } {
	const constraint = opts.primary ? "first-primary" : (wellFormed(opts.bookmark) ?? "first-unconstrained");
	const session = d1.withSession(constraint);
	// A session is per request: the client is built without the schema (no relational queries are used),
	// which costs little, unlike the schema walk createDb caches.
	const db = drizzle(session as unknown as D1Database) as unknown as Database;
	return { db, session };
}

/**
 * sessionDb, opened on first use: a request answered from the isolate's caches (a verified token, the
 * user and the access check) opens no D1 session at all. `bookmark()` is the session's bookmark; when
 * the request made no query, the client's own (well-formed) bookmark, or undefined without one. `opts`
 * is read when the session opens (or the bookmark is asked for).
 * @example const { db, bookmark } = lazySessionDb(env.DB, () => ({ bookmark: req.header("x-d1-bookmark") }))
 */
export function lazySessionDb(
	d1: D1Database,
	opts: () => { bookmark?: string | null; primary?: boolean },
): { db: Database; bookmark: () => string | undefined } {
	let opened: ReturnType<typeof sessionDb> | undefined;
	const open = () => {
		opened ??= sessionDb(d1, opts());
		return opened.db;
	};
	// Everything asked of the client is answered by the session's: its methods bound to it (`this` is
	// the real client), its prototype (instanceof, drizzle's is()) and its own properties (spread, keys).
	const db = new Proxy({} as Database, {
		get(_target, prop) {
			const real = open();
			const value = Reflect.get(real, prop, real);
			return typeof value === "function" && prop !== "constructor" ? value.bind(real) : value;
		},
		has: (_target, prop) => prop in open(),
		getPrototypeOf: () => Object.getPrototypeOf(open()),
		ownKeys: () => Reflect.ownKeys(open()),
		getOwnPropertyDescriptor(_target, prop) {
			const found = Reflect.getOwnPropertyDescriptor(open(), prop);
			// A proxy may not report a property the (empty) target lacks as non-configurable.
			return found && { ...found, configurable: true };
		},
	});
	const bookmark = () => {
		if (opened) return opened.session.getBookmark() ?? undefined;
		// No query: the client's own bookmark still names what it has seen, so it is handed back as sent.
		return wellFormed(opts().bookmark);
	};
	return { db, bookmark };
}
