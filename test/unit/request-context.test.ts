import { env } from "cloudflare:workers";
import { is, sql } from "drizzle-orm";
import { DrizzleD1Database, drizzle } from "drizzle-orm/d1";
import { describe, expect, it, vi } from "vitest";
import type { AuthContext } from "../../src/auth/claims";
import { type Database, lazySessionDb } from "../../src/db/client";
import { continueTrace, newTraceId, parseTraceparent, traceparentOf } from "../../src/lib/trace";
import { type Lookup, resolveOrgAccess } from "../../src/services/access";
import { limitsFor } from "../../src/services/plans";

describe("trace and span ids (from crypto.randomUUID)", () => {
	it("are lowercase hex of W3C length, never all zeros, distinct, and read back from the traceparent they make", () => {
		const spans = new Set<string>();
		const traces = new Set<string>();
		for (let i = 0; i < 2_000; i++) {
			const t = continueTrace(i % 2 ? null : "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
			expect(t.traceId).toMatch(/^[0-9a-f]{32}$/);
			expect(t.spanId).toMatch(/^[0-9a-f]{16}$/);
			expect(t.traceId).not.toMatch(/^0+$/);
			expect(t.spanId).not.toMatch(/^0+$/);
			expect(parseTraceparent(traceparentOf(t))).toEqual({ traceId: t.traceId, parentId: t.spanId, sampled: true });
			spans.add(t.spanId);
			traces.add(newTraceId());
		}
		expect(spans.size).toBe(2_000);
		expect(traces.size).toBe(2_000);
	});
});

describe("a cached lookup's permissions merged with a token's", () => {
	const organization = { id: "org_merge", name: null, slug: null, imageUrl: null, plan: "free", createdAt: 0, updatedAt: 0 };
	const found: Lookup = { organization, limits: limitsFor("free"), suspended: false, membership: { role: "org:member" }, rolePermissions: ["org:b", "org:a"] };
	const base: AuthContext = { userId: "user_merge", sessionId: null, orgId: "org_merge", orgSlug: null, orgRole: "org:member", orgPermissions: [], tokenVersion: 2, expiresAt: 0 };
	const db = {} as Database;
	const access = (auth: AuthContext, lookup = found) => resolveOrgAccess(db, auth, "org_merge", async () => lookup);

	it("are each token's own, also for tokens of one lookup served concurrently", async () => {
		const x = { ...base, orgPermissions: ["org:x"] };
		const y = { ...base, orgPermissions: ["org:y"] };
		// A token whose role disagrees with D1, or whose active organization is another: its own permissions do not count.
		const otherRole = { ...base, orgRole: "org:admin", orgPermissions: ["org:z"] };
		const otherOrg = { ...base, orgId: "org_other", orgPermissions: ["org:w"] };
		for (let round = 0; round < 3; round++) {
			const [ax, ay, ar, ao] = await Promise.all([x, y, otherRole, otherOrg].map((t) => access(t)));
			expect(ax?.permissions).toEqual(["org:a", "org:b", "org:x"]);
			expect(ay?.permissions).toEqual(["org:a", "org:b", "org:y"]);
			expect(ar?.permissions).toEqual(["org:a", "org:b"]);
			expect(ao?.permissions).toEqual(["org:a", "org:b"]);
		}
		// A lookup read again (a cache miss after invalidation) is a new object: never the old union.
		expect((await access(x, { ...found, rolePermissions: ["org:c"] })).permissions).toEqual(["org:c", "org:x"]);
	});

	it("are one frozen list per lookup and token: a caller cannot change what later requests get", async () => {
		const x = { ...base, orgPermissions: ["org:x"] };
		const first = await access(x);
		const again = await access(x);
		expect(again.permissions).toBe(first.permissions);
		expect(() => first.permissions.push("org:admin:everything")).toThrow(TypeError);
		expect((await access(x)).permissions).toEqual(["org:a", "org:b", "org:x"]);
	});
});

describe("the directory client opened on first use (lazySessionDb)", () => {
	it("opens no D1 session until a query, then answers as the session's drizzle client: instanceof, is(), its keys, one session", async () => {
		const withSession = vi.spyOn(env.DB, "withSession");
		const { db, bookmark } = lazySessionDb(env.DB, () => ({ bookmark: "00000000-00000001-00000000-00000000000000000000000000000000" }));
		expect(withSession).not.toHaveBeenCalled();
		expect(bookmark()).toBe("00000000-00000001-00000000-00000000000000000000000000000000");
		expect(withSession).not.toHaveBeenCalled();

		expect(db instanceof DrizzleD1Database).toBe(true);
		expect(is(db, DrizzleD1Database)).toBe(true);
		expect(db.constructor).toBe(DrizzleD1Database);
		const real = drizzle(env.DB);
		expect(Object.keys(db).sort()).toEqual(Object.keys(real).sort());
		expect({ ...db }).toHaveProperty("$client");
		expect(withSession).toHaveBeenCalledTimes(1);

		const rows = await db.select({ one: sql<number>`1` }).from(sql`(SELECT 1)`);
		expect(rows).toEqual([{ one: 1 }]);
		expect(await db.$client.prepare("SELECT 2 AS two").first("two")).toBe(2);
		expect(withSession).toHaveBeenCalledTimes(1);
		expect(bookmark()).toMatch(/^[0-9a-f]+(-[0-9a-f]+)+$/);
		withSession.mockRestore();
	});
});
