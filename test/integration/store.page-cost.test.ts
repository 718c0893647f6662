import { describe, expect, it } from "vitest";
import { type Body, get } from "../helpers/request";
import { storeOf, storeSql } from "../helpers/store";
import { seedTenant } from "../helpers/tenant";

// What one list page reads from the tenant's store as the tenant grows (issue 19; `npm run bench -- scale`
// measures the same at 100,000 rows): the rows the store's SQLite reports read for the request.

type ProductPage = Body<"GET /api/orgs/:orgId/products">;
type AuditPage = Body<"GET /api/orgs/:orgId/audit-logs">;

const ROWS = 600;
const LIMIT = 10;

/** GET as the tenant's admin; the answer and the rows the store read for it. */
async function measured<T>(orgId: string, path: string, token: string): Promise<{ json: T; rows: number }> {
	const before = await storeOf(orgId).rowCounters();
	const res = await get<T>(path, token);
	expect(res.status, res.text).toBe(200);
	const after = await storeOf(orgId).rowCounters();
	return { json: res.json, rows: after.rowsRead - before.rowsRead };
}

describe("list pages read about a page of rows at any depth", () => {
	it("a search page reads its hits and their products, not every match before the cursor", async () => {
		const t = await seedTenant();
		// Product i is named "Tea i amber" for one in ten, "Tea i plain" otherwise.
		await storeSql(
			t.orgId,
			`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
			INSERT INTO products (id, organization_id, name, sku, price_minor, currency, status, stock, version, created_at, updated_at)
			SELECT printf('prd_t%05d', i), ?, printf('Tea %d %s', i, CASE WHEN i % 10 = 0 THEN 'amber' ELSE 'plain' END),
				printf('SKU-%05d', i), 100, 'INR', 'active', 1, 1, 1700000000000 + i, 1700000000000 + i FROM n`,
			ROWS,
			t.orgId,
		);
		const seen: string[] = [];
		let cursor: string | null = null;
		do {
			const page: { json: ProductPage; rows: number } = await measured<ProductPage>(
				t.orgId,
				`${t.base}/products?q=amber&limit=${LIMIT}${cursor ? `&cursor=${cursor}` : ""}`,
				t.admin.token,
			);
			// limit + 1 index matches and their products, plus the cursor's own match.
			expect(page.rows).toBeLessThanOrEqual(2 * (LIMIT + 1) + 1);
			seen.push(...page.json.data.map((p) => p.id));
			cursor = page.json.nextCursor;
		} while (cursor);
		expect(seen).toEqual(Array.from({ length: ROWS / 10 }, (_, i) => `prd_t${String((i + 1) * 10).padStart(5, "0")}`));
	});

	it("an audit page filtered by action or actor is one index range", async () => {
		const t = await seedTenant();
		await storeSql(
			t.orgId,
			`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
			INSERT INTO audit_logs (id, organization_id, seq, event_id, actor_type, actor_id, action, occurred_at, prev_hash, hash)
			SELECT printf('log_t%05d', i), ?, i, printf('evt_t%05d', i), 'user', printf('user_t%d', i % 10), printf('step.%d', i % 4),
				1700000000000 + i, '', '' FROM n`,
			ROWS,
			t.orgId,
		);
		for (const filter of ["action=step.2", "actor=user_t3"]) {
			const first = await measured<AuditPage>(t.orgId, `${t.base}/audit-logs?${filter}&limit=${LIMIT}`, t.admin.token);
			const second = await measured<AuditPage>(t.orgId, `${t.base}/audit-logs?${filter}&limit=${LIMIT}&cursor=${first.json.nextCursor}`, t.admin.token);
			for (const page of [first, second]) {
				expect(page.rows, filter).toBeLessThanOrEqual(LIMIT + 2);
				expect(page.json.data).toHaveLength(LIMIT);
			}
			const seqs = [...first.json.data, ...second.json.data].map((e) => e.seq);
			expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
			expect(new Set(seqs).size).toBe(2 * LIMIT);
			const [key, value] = filter.split("=") as [string, string];
			for (const e of [...first.json.data, ...second.json.data]) expect(key === "action" ? e.action : e.actor.id).toBe(value);
		}
	});
});
