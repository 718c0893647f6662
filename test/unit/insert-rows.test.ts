import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { createDb } from "../../src/db/client";
import { insertRows } from "../../src/db/insert";
import { auditLogs, products, roles } from "../../src/db/schema";

const db = createDb(env.DB);

const product = (i: number) => ({
	id: `prd_${i}`,
	organizationId: "org_1",
	categoryId: null,
	name: `Tea "${i}"`,
	sku: `SKU-${i}`,
	description: null,
	priceMinor: 100 + i,
	currency: "INR",
	status: "active" as const,
	stock: i,
	version: 1,
	createdAt: 1_700_000_000_000 + i,
	updatedAt: 1_700_000_000_000 + i,
});

describe("insertRows: drizzle's insert, compiled once per shape", () => {
	it("has the text and parameters drizzle builds, for one row and for several", () => {
		for (const rows of [[product(1)], [product(1), product(2), product(3)]]) {
			const ours = insertRows(products, rows);
			const theirs = db.insert(products).values(rows).toSQL();
			expect(ours.text).toBe(theirs.sql);
			expect(ours.params).toEqual(theirs.params);
		}
	});

	it("maps values as the column does (a boolean-mode integer is bound as 0/1)", () => {
		const row = { id: "rol_1", organizationId: null, key: "org:x", name: "X", description: null, isSystem: true, sourceUpdatedAt: 1, createdAt: 2, updatedAt: 3, deletedAt: null };
		const ours = insertRows(roles, [row]);
		const theirs = db.insert(roles).values(row).toSQL();
		expect(ours.text).toBe(theirs.sql);
		expect(ours.params).toEqual(theirs.params);
		expect(ours.params).toContain(1);
	});

	it("refuses a row that leaves a column out or gives SQL (drizzle's insert handles those)", () => {
		const { categoryId: _, ...partial } = product(1);
		expect(() => insertRows(products, [partial as never])).toThrow(/products\.categoryId/);
		expect(() => insertRows(products, [{ ...product(1), stock: sql`1 + 1` } as never])).toThrow(/products\.stock/);
		expect(() => insertRows(auditLogs, [])).toThrow(/no rows/);
	});

	it("runs: the row D1 stores is the row given", async () => {
		const row = { ...product(7), id: `prd_insert_rows_${Date.now()}` };
		const { text, params } = insertRows(products, [row]);
		await env.DB.prepare(text).bind(...params).run();
		const [stored] = await db.select().from(products).where(sql`${products.id} = ${row.id}`);
		expect(stored).toEqual(row);
	});
});
