import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import type { TenantEvent } from "../../src/queue/tenant-events";
import { OUTBOX_MAX_RELAYS } from "../../src/services/outbox";
import worker from "../../src/index";
import { uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { type Body, call } from "../helpers/request";
import { captureTenantEvents, deliverTenant } from "../helpers/tenant-queue";
import { seedTenant } from "../helpers/tenant";
import { TEST_OPERATOR } from "../helpers/vars";

type AuditList = Body<"GET /api/orgs/:orgId/audit-logs">;

/** Runs the Worker's cron handler (the outbox drain) to the end. */
async function runCron() {
	const ctx = createExecutionContext();
	await worker.scheduled(createScheduledController({ cron: "* * * * *" }), env, ctx);
	await waitOnExecutionContext(ctx);
}

/**
 * A request whose waitUntil work is dropped, as when the isolate dies right after the response: the
 * execution context never runs (or awaits) what is handed to it.
 */
async function callDroppingWaitUntil(method: string, path: string, opts: { token: string; body?: unknown; headers?: Record<string, string> }) {
	const ctx = { waitUntil: () => {}, passThroughOnException: () => {}, props: {} } as unknown as ExecutionContext;
	const headers: Record<string, string> = { authorization: `Bearer ${opts.token}`, ...opts.headers };
	if (opts.body !== undefined) headers["content-type"] = "application/json";
	const req = new Request(`https://api.test${path}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
	const res = await worker.fetch(req, env, ctx);
	const text = await res.text();
	return { status: res.status, text, json: text ? JSON.parse(text) : null };
}

const outboxRows = async (orgId: string) =>
	(
		await env.DB.prepare("SELECT id, body, status, attempts, last_error AS lastError FROM outbox WHERE organization_id = ? ORDER BY created_at, id")
			.bind(orgId)
			.all<{ id: string; body: string; status: string; attempts: number; lastError: string | null }>()
	).results;

const auditActions = async (orgId: string, token: string) => {
	const list = await call<AuditList>("GET", `/api/orgs/${orgId}/audit-logs?limit=100`, { token });
	expect(list.status, list.text).toBe(200);
	return list.json.data.map((e) => e.action).reverse();
};

const ofOrg = (sent: TenantEvent[], orgId: string) => sent.filter((m) => m.organizationId === orgId);

describe("transactional outbox", () => {
	it("a store write commits its audit entry in the outbox with it; the relay sends it right away and deletes the row", async () => {
		const t = await seedTenant();
		const sent = captureTenantEvents(vi);
		const res = await call("POST", `${t.base}/categories`, {
			token: t.admin.token,
			body: { name: "Relayed", slug: uid("rel").toLowerCase().replaceAll("_", "-") },
			settle: true,
		});
		expect(res.status, res.text).toBe(201);
		expect(ofOrg(sent, t.orgId)).toEqual([expect.objectContaining({ kind: "audit", action: "category.created", relays: 1 })]);
		// Accepted by the queue: the row is gone.
		expect(await outboxRows(t.orgId)).toEqual([]);
		await deliverTenant(ofOrg(sent, t.orgId));
		expect(await auditActions(t.orgId, t.admin.token)).toEqual(["category.created"]);
	});

	it("the queue refuses the send after the write committed: the entry stays in the outbox and reaches the audit chain once the cron relays it", async () => {
		const t = await seedTenant();
		const down = vi.spyOn(env.TENANT_EVENTS, "sendBatch").mockRejectedValue(new Error("queue unavailable"));
		const res = await call<Body<"POST /api/orgs/:orgId/products">>("POST", `${t.base}/products`, {
			token: t.admin.token,
			body: { name: "Kept", sku: uid("K"), priceMinor: 100, currency: "INR", status: "active" },
			settle: true,
		});
		expect(res.status, res.text).toBe(201);
		expect(down).toHaveBeenCalled();
		const parked = await outboxRows(t.orgId);
		expect(parked).toHaveLength(1);
		expect(parked[0]).toMatchObject({ status: "pending", attempts: 0, lastError: "queue unavailable" });
		expect(JSON.parse(parked[0]!.body)).toMatchObject({ kind: "audit", action: "product.created", targetId: res.json.id });
		down.mockRestore();

		const sent = captureTenantEvents(vi);
		await runCron();
		expect(ofOrg(sent, t.orgId).map((m) => m.kind === "audit" && m.action)).toEqual(["product.created"]);
		expect(await outboxRows(t.orgId)).toEqual([]);
		await deliverTenant(ofOrg(sent, t.orgId));
		expect(await auditActions(t.orgId, t.admin.token)).toEqual(["product.created"]);
	});

	it("the relay is dropped (the isolate dies after the commit): every store mutation's entry is still relayed by the cron, and written once", async () => {
		const t = await seedTenant();
		// The queue takes the relay's messages but never answers, and the waitUntil work is never run to the end.
		const inFlight: TenantEvent[] = [];
		vi.spyOn(env.TENANT_EVENTS, "sendBatch").mockImplementation((msgs) => {
			for (const m of msgs) inFlight.push(m.body as TenantEvent);
			return new Promise(() => {});
		});
		const as = { token: t.admin.token };
		const cat = await callDroppingWaitUntil("POST", `${t.base}/categories`, { ...as, body: { name: "C", slug: uid("c").toLowerCase().replaceAll("_", "-") } });
		expect(cat.status, cat.text).toBe(201);
		expect((await callDroppingWaitUntil("PATCH", `${t.base}/categories/${cat.json.id}`, { ...as, body: { name: "C2" } })).status).toBe(200);
		const product = await callDroppingWaitUntil("POST", `${t.base}/products`, {
			...as,
			body: { name: "P", sku: uid("P"), priceMinor: 500, currency: "INR", status: "active", stock: 5 },
		});
		expect(product.status, product.text).toBe(201);
		const p = `${t.base}/products/${product.json.id}`;
		expect((await callDroppingWaitUntil("PATCH", p, { ...as, body: { priceMinor: 600 } })).status).toBe(200);
		expect((await callDroppingWaitUntil("POST", `${p}/inventory`, { ...as, body: { delta: 3 } })).status).toBe(200);
		const variant = await callDroppingWaitUntil("POST", `${p}/variants`, { ...as, body: { name: "V", sku: uid("V"), stock: 1 } });
		expect(variant.status, variant.text).toBe(201);
		expect((await callDroppingWaitUntil("PATCH", `${p}/variants/${variant.json.id}`, { ...as, body: { name: "V2" } })).status).toBe(200);
		expect((await callDroppingWaitUntil("DELETE", `${p}/variants/${variant.json.id}`, as)).status).toBe(204);
		const order = await callDroppingWaitUntil("POST", `${t.base}/orders`, { ...as, body: { items: [{ productId: product.json.id, quantity: 2 }] } });
		expect(order.status, order.text).toBe(201);
		const moved = await callDroppingWaitUntil("POST", `${t.base}/orders/${order.json.id}/status`, { ...as, body: { status: "cancelled" } });
		expect(moved.status, moved.text).toBe(200);
		expect((await callDroppingWaitUntil("DELETE", `${t.base}/categories/${cat.json.id}`, as)).status).toBe(204);
		expect((await callDroppingWaitUntil("DELETE", p, as)).status).toBe(204);
		vi.restoreAllMocks();

		const expected = [
			"category.created",
			"category.updated",
			"product.created",
			"product.updated",
			"inventory.adjusted",
			"variant.created",
			"variant.updated",
			"variant.deleted",
			"order.created",
			"order.status_changed",
			"category.deleted",
			"product.deleted",
		];
		// Every change left its rows in the outbox (entries, plus the two outgoing order events).
		const pending = await outboxRows(t.orgId);
		expect(pending.every((r) => r.status === "pending")).toBe(true);
		expect(pending.map((r) => JSON.parse(r.body)).filter((m) => m.kind === "audit").map((m) => m.action)).toEqual(expected);
		expect(pending.map((r) => JSON.parse(r.body)).filter((m) => m.kind === "webhook.event").map((m) => m.type)).toEqual([
			"order.created",
			"order.status_changed",
		]);

		const sent = captureTenantEvents(vi);
		await runCron();
		expect(await outboxRows(t.orgId)).toEqual([]);
		// The relay's messages may have reached the queue after all: both copies are consumed, each entry written once.
		await deliverTenant([...ofOrg(inFlight, t.orgId), ...ofOrg(sent, t.orgId)].filter((m) => m.kind === "audit"));
		expect(await auditActions(t.orgId, t.admin.token)).toEqual(expected);
		const entries = await call<AuditList>("GET", `${t.base}/audit-logs?limit=100`, as);
		const byAction = (a: string) => entries.json.data.find((e) => e.action === a)!;
		// `after` is the row as the batch left it, computed in the batch.
		expect(byAction("product.updated")).toMatchObject({ before: { priceMinor: 500 }, after: { priceMinor: 600, version: 2 } });
		expect(byAction("inventory.adjusted")).toMatchObject({ before: { delta: 3 }, after: { stock: 8 } });
		expect(byAction("category.updated").after).toMatchObject({ name: "C2", version: 2 });
		expect(byAction("category.updated").after).not.toHaveProperty("organizationId");
		const verify = await call<Body<"GET /api/orgs/:orgId/audit-logs/verify">>("GET", `${t.base}/audit-logs/verify`, as);
		expect(verify.json).toMatchObject({ intact: true, entries: expected.length });
	});

	it("a change that does not commit writes no outbox row (409 duplicate, 412 stale If-Match, 409 insufficient stock)", async () => {
		const t = await seedTenant();
		captureTenantEvents(vi);
		const sku = uid("D");
		const body = { name: "D", sku, priceMinor: 1, currency: "INR", status: "active", stock: 1 };
		const first = await call<Body<"POST /api/orgs/:orgId/products">>("POST", `${t.base}/products`, { token: t.admin.token, body, settle: true });
		expect(first.status).toBe(201);
		expect((await call("POST", `${t.base}/products`, { token: t.admin.token, body, settle: true })).status).toBe(409);
		const p = `${t.base}/products/${first.json.id}`;
		const stale = await call("PATCH", p, { token: t.admin.token, body: { name: "E" }, headers: { "if-match": 'W/"7"' }, settle: true });
		expect(stale.status, stale.text).toBe(412);
		expect((await call("POST", `${p}/inventory`, { token: t.admin.token, body: { delta: -5 }, settle: true })).status).toBe(409);
		// Only the one create was written (and relayed, so the row is gone); a change's rows never outlive a rollback.
		expect(await outboxRows(t.orgId)).toEqual([]);
		vi.restoreAllMocks();
		const down = vi.spyOn(env.TENANT_EVENTS, "sendBatch").mockRejectedValue(new Error("down"));
		expect((await call("POST", `${t.base}/products`, { token: t.admin.token, body, settle: true })).status).toBe(409);
		expect((await call("PATCH", p, { token: t.admin.token, body: { name: "E" }, headers: { "if-match": 'W/"7"' }, settle: true })).status).toBe(412);
		expect(down).not.toHaveBeenCalled();
		expect(await outboxRows(t.orgId)).toEqual([]);
	});

	it(`an always-failing event stops after ${OUTBOX_MAX_RELAYS} relays and stays failed, with no further queue traffic`, async () => {
		const t = await seedTenant();
		let sent = captureTenantEvents(vi);
		const res = await call("POST", `${t.base}/categories`, {
			token: t.admin.token,
			body: { name: "Doomed", slug: uid("d").toLowerCase().replaceAll("_", "-") },
			settle: true,
		});
		expect(res.status).toBe(201);
		let relays = 0;
		// Each relay is retried by the queue until max_retries, then dead-lettered (the consumer always fails):
		// the dead-letter consumer gets it back. Then the cron runs again.
		for (let cycle = 0; cycle < OUTBOX_MAX_RELAYS + 5; cycle++) {
			const ours = ofOrg(sent, t.orgId);
			relays += ours.length;
			if (ours.length > 0) {
				expect(ours).toEqual([expect.objectContaining({ action: "category.created", relays: relays })]);
				const dlq = await deliverTenant(ours, { queue: "tenant-events-dlq" });
				expect(dlq.explicitAcks).toHaveLength(1);
			}
			vi.restoreAllMocks();
			sent = captureTenantEvents(vi);
			await runCron();
		}
		expect(relays).toBe(OUTBOX_MAX_RELAYS);
		expect(await outboxRows(t.orgId)).toEqual([
			expect.objectContaining({ status: "failed", attempts: OUTBOX_MAX_RELAYS, lastError: `dead-lettered after relay ${OUTBOX_MAX_RELAYS}` }),
		]);
		// The failed row is left alone by the cron.
		expect(ofOrg(sent, t.orgId)).toEqual([]);

		// An operator sees it and re-arms it; the next cron run sends it again.
		const operator = await signToken({ userId: TEST_OPERATOR });
		const failed = await call<Body<"GET /api/admin/outbox">>("GET", "/api/admin/outbox?status=failed&limit=100", { token: operator });
		expect(failed.status, failed.text).toBe(200);
		const row = failed.json.data.find((r) => r.organizationId === t.orgId)!;
		expect(row).toMatchObject({ status: "failed", attempts: OUTBOX_MAX_RELAYS, event: { kind: "audit", action: "category.created" } });
		expect((await call("POST", `/api/admin/outbox/${row.id}/replay`, { token: t.admin.token })).status).toBe(403);
		expect((await call("POST", "/api/admin/outbox/aud_missing/replay", { token: operator })).status).toBe(404);
		const replay = await call("POST", `/api/admin/outbox/${row.id}/replay`, { token: operator });
		expect(replay.status, replay.text).toBe(202);
		await runCron();
		expect(ofOrg(sent, t.orgId)).toEqual([expect.objectContaining({ action: "category.created", relays: 1 })]);
		await deliverTenant(ofOrg(sent, t.orgId));
		expect(await auditActions(t.orgId, t.admin.token)).toEqual(["category.created"]);
	});
});
