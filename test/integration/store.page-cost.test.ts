import { describe, expect, it } from "vitest";
import { encodeCursor } from "../../src/lib/cursor";
import { type Body, get, type Problem } from "../helpers/request";
import { storeOf, storeSql } from "../helpers/store";
import { seedTenant } from "../helpers/tenant";

// What one list page reads from the tenant's store as the tenant grows (issue 19; `npm run bench -- scale`
// measures the same at 100,000 rows): the rows the store's SQLite reports read for the request.

type ProductPage = Body<"GET /api/orgs/:orgId/products">;
type AuditPage = Body<"GET /api/orgs/:orgId/audit-logs">;
type DeliveryPage = Body<"GET /api/orgs/:orgId/webhooks/:endpointId/deliveries">;

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
	it("a search page reads its hits (one row each, the index carries the product), not every match before the cursor", async () => {
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
			// limit + 1 matches of products_search, each with its product's columns, plus the cursor's own.
			expect(page.rows).toBeLessThanOrEqual(LIMIT + 2);
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

	it("a deliveries page reads limit + 2 rows at any depth; 404 for an unknown endpoint, and for a deleted one on its first page", async () => {
		const t = await seedTenant({ plan: "pro" });
		const endpoint = (id: string) =>
			storeSql(
				t.orgId,
				`INSERT INTO webhook_endpoints (id, organization_id, url, event_types, secret, status, created_at, updated_at)
				VALUES (?, ?, 'https://hooks.tenant.example.com/in', '["*"]', 'whsec_x', 'enabled', 1700000000000, 1700000000000)`,
				id,
				t.orgId,
			);
		await endpoint("whe_t1");
		await endpoint("whe_empty");
		// Delivery i of whe_t1 at created_at base + i / 10 (ten share each instant: the id breaks the tie), and
		// as many for an endpoint that is gone (a deleted endpoint's deliveries stay until retention).
		for (const endpointId of ["whe_t1", "whe_gone"]) {
			await storeSql(
				t.orgId,
				`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
				INSERT INTO webhook_deliveries (id, organization_id, endpoint_id, event_id, event_type, payload, status, attempts, created_at, updated_at)
				SELECT printf('dlv_%s_%05d', ?, i), ?, ?, printf('evt_t%05d', i), 'order.created', '{}', 'succeeded', 1,
					1700000000000 + i / 10, 1700000000000 + i / 10 FROM n`,
				ROWS,
				endpointId,
				t.orgId,
				endpointId,
			);
		}
		const id = (i: number) => `dlv_whe_t1_${String(i).padStart(5, "0")}`;
		const path = (endpointId: string, cursor?: string | null) =>
			`${t.base}/webhooks/${endpointId}/deliveries?limit=${LIMIT}${cursor ? `&cursor=${cursor}` : ""}`;
		// From the middle of the list, on a created_at shared by ten deliveries.
		const middleCursor = encodeCursor({ k: 1700000000000 + Math.floor(305 / 10), id: id(305) });

		const first = await measured<DeliveryPage>(t.orgId, path("whe_t1"), t.admin.token);
		const second = await measured<DeliveryPage>(t.orgId, path("whe_t1", first.json.nextCursor), t.admin.token);
		const middle = await measured<DeliveryPage>(t.orgId, path("whe_t1", middleCursor), t.admin.token);
		const newestFirst = (from: number) => Array.from({ length: LIMIT }, (_, j) => id(from - j));
		expect(first.json.data.map((d) => d.id)).toEqual(newestFirst(ROWS));
		expect(second.json.data.map((d) => d.id)).toEqual(newestFirst(ROWS - LIMIT));
		expect(middle.json.data.map((d) => d.id)).toEqual(newestFirst(304));
		// Page 1: limit + 1 deliveries and the endpoint's row; a cursor page: limit + 1 and the cursor's row.
		for (const page of [first, second, middle]) {
			expect(page.rows).toBeLessThanOrEqual(LIMIT + 2);
			expect(page.json.nextCursor).not.toBeNull();
		}

		// An endpoint without deliveries: an empty page, two rows (the check in the query, then the endpoint).
		const empty = await measured<DeliveryPage>(t.orgId, path("whe_empty"), t.admin.token);
		expect(empty.json).toEqual({ data: [], nextCursor: null });
		expect(empty.rows).toBeLessThanOrEqual(2);
		// 404: an unknown endpoint, from page 1 or with a cursor; a deleted endpoint's list, which begins on page 1.
		for (const [endpointId, cursor] of [["whe_unknown", null], ["whe_unknown", middleCursor], ["whe_gone", null]] as const) {
			const res = await get<Problem>(path(endpointId, cursor), t.admin.token);
			expect(res.status, `${endpointId} ${res.text}`).toBe(404);
			expect(res.json.detail).toBe("webhook endpoint not found");
		}
	});
});
