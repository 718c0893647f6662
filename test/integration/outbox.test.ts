import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, type MockInstance, vi } from "vitest";
import worker from "../../src/index";
import type { TenantEvent } from "../../src/queue/tenant-events";
import { OUTBOX_MAX_RELAYS } from "../../src/services/outbox";
import type { TenantStoreObject } from "../../src/tenant-store/object";
import { uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { fakeReceiver, stubNetwork } from "../helpers/network";
import { type Body, call } from "../helpers/request";
import { drainStore, inStore, storeSql } from "../helpers/store";
import { captureTenantEvents, deliverTenant } from "../helpers/tenant-queue";
import { seedTenant } from "../helpers/tenant";
import { TEST_OPERATOR } from "../helpers/vars";
import { eventually } from "../helpers/wait";

type AuditList = Body<"GET /api/orgs/:orgId/audit-logs">;
interface OutboxRow {
	id: string;
	body: string;
	status: string;
	attempts: number;
	lastError: string | null;
}

/** Runs the Worker's cron handler (the D1 outbox drain) to the end. */
async function runCron() {
	const ctx = createExecutionContext();
	await worker.scheduled(createScheduledController({ cron: "* * * * *" }), env, ctx);
	await waitOnExecutionContext(ctx);
}

const OUTBOX_COLUMNS = "id, body, status, attempts, last_error AS lastError";

/** The tenant store's outbox (the store's own changes and deliveries), oldest first. */
const storeOutbox = (orgId: string) => storeSql<OutboxRow>(orgId, `SELECT ${OUTBOX_COLUMNS} FROM outbox ORDER BY created_at, id`);

/** D1's outbox rows of the organization (changes made outside the store: directory, operators). */
const d1Outbox = async (orgId: string) =>
	(await env.DB.prepare(`SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE organization_id = ? ORDER BY created_at, id`).bind(orgId).all<OutboxRow>())
		.results;

/** The actions of the store's audit chain, in chain order. */
const chain = async (orgId: string) => (await storeSql<{ action: string }>(orgId, "SELECT action FROM audit_logs ORDER BY seq")).map((r) => r.action);

/** The audit log as the API lists it, oldest first. */
const auditActions = async (orgId: string, token: string) => {
	const list = await call<AuditList>("GET", `/api/orgs/${orgId}/audit-logs?limit=100`, { token });
	expect(list.status, list.text).toBe(200);
	return list.json.data.map((e) => e.action).reverse();
};

const ofOrg = (sent: TenantEvent[], orgId: string) => sent.filter((m) => m.organizationId === orgId);

/**
 * The request is interrupted after its change committed, as when the object is reset: the store's apply
 * fails `before` applying the events (nothing applied), or `after` (applied, but their outbox rows not
 * deleted). It fails for the alarm too until the spy is restored.
 */
async function interruptApply(orgId: string, when: "before" | "after") {
	let spy!: MockInstance<TenantStoreObject["apply"]>;
	await inStore(orgId, (store) => {
		const apply = store.apply.bind(store);
		spy = vi.spyOn(store, "apply").mockImplementation(async (messages) => {
			if (when === "after") await apply(messages);
			throw new Error("interrupted");
		});
	});
	return spy;
}

const slug = (p: string) => uid(p).toLowerCase().replaceAll("_", "-");

describe("transactional outbox", () => {
	it("a store change's audit entry is in the store's chain when the request returns: no outbox row is left, nothing goes through the queue", async () => {
		const t = await seedTenant();
		const sent = captureTenantEvents(vi);
		const res = await call<Body<"POST /api/orgs/:orgId/categories">>("POST", `${t.base}/categories`, {
			token: t.admin.token,
			body: { name: "Chained", slug: slug("chn") },
		});
		expect(res.status, res.text).toBe(201);
		expect(await chain(t.orgId)).toEqual(["category.created"]);
		expect(await storeOutbox(t.orgId)).toEqual([]);
		expect(await d1Outbox(t.orgId)).toEqual([]);
		expect(ofOrg(sent, t.orgId)).toEqual([]);
		const list = await call<AuditList>("GET", `${t.base}/audit-logs`, { token: t.admin.token });
		expect(list.json.data).toEqual([
			expect.objectContaining({ seq: 1, action: "category.created", actor: { type: "user", id: t.admin.id }, target: { type: "category", id: res.json.id } }),
		]);
	});

	it("the relay is interrupted before the events are applied: every store mutation's rows stay in the store's outbox, and the alarm applies each exactly once", async () => {
		const t = await seedTenant();
		const interrupted = await interruptApply(t.orgId, "before");
		const as = { token: t.admin.token };
		const cat = await call<Body<"POST /api/orgs/:orgId/categories">>("POST", `${t.base}/categories`, { ...as, body: { name: "C", slug: slug("c") } });
		expect(cat.status, cat.text).toBe(201);
		expect((await call("PATCH", `${t.base}/categories/${cat.json.id}`, { ...as, body: { name: "C2" } })).status).toBe(200);
		const product = await call<Body<"POST /api/orgs/:orgId/products">>("POST", `${t.base}/products`, {
			...as,
			body: { name: "P", sku: uid("P"), priceMinor: 500, currency: "INR", status: "active", stock: 5 },
		});
		expect(product.status, product.text).toBe(201);
		const p = `${t.base}/products/${product.json.id}`;
		expect((await call("PATCH", p, { ...as, body: { priceMinor: 600 } })).status).toBe(200);
		expect((await call("POST", `${p}/inventory`, { ...as, body: { delta: 3 } })).status).toBe(200);
		const variant = await call<Body<"POST /api/orgs/:orgId/products/:productId/variants">>("POST", `${p}/variants`, {
			...as,
			body: { name: "V", sku: uid("V"), stock: 1 },
		});
		expect(variant.status, variant.text).toBe(201);
		expect((await call("PATCH", `${p}/variants/${variant.json.id}`, { ...as, body: { name: "V2" } })).status).toBe(200);
		expect((await call("DELETE", `${p}/variants/${variant.json.id}`, as)).status).toBe(204);
		const order = await call<Body<"POST /api/orgs/:orgId/orders">>("POST", `${t.base}/orders`, {
			...as,
			body: { items: [{ productId: product.json.id, quantity: 2 }] },
		});
		expect(order.status, order.text).toBe(201);
		const moved = await call("POST", `${t.base}/orders/${order.json.id}/status`, { ...as, body: { status: "cancelled" } });
		expect(moved.status, moved.text).toBe(200);
		expect((await call("DELETE", `${t.base}/categories/${cat.json.id}`, as)).status).toBe(204);
		expect((await call("DELETE", p, as)).status).toBe(204);

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
		// Every change left its rows in the store's outbox (entries, plus the two outgoing order events);
		// nothing reached the chain.
		expect(interrupted).toHaveBeenCalled();
		const pending = await storeOutbox(t.orgId);
		expect(pending.every((r) => r.status === "pending" && r.attempts === 0)).toBe(true);
		expect(pending.map((r) => JSON.parse(r.body)).filter((m) => m.kind === "audit").map((m) => m.action)).toEqual(expected);
		expect(pending.map((r) => JSON.parse(r.body)).filter((m) => m.kind === "webhook.event").map((m) => m.type)).toEqual([
			"order.created",
			"order.status_changed",
		]);
		expect(await chain(t.orgId)).toEqual([]);
		// The alarm tried them too and failed: it tries again after a pause, not in a loop.
		const retryAt = await eventually(
			() => inStore(t.orgId, (_store, state) => state.storage.getAlarm()),
			(at) => at !== null && at > Date.now() + 1_000,
		);
		expect(retryAt).toBeGreaterThan(Date.now() + 1_000);

		interrupted.mockRestore();
		await drainStore(t.orgId);
		expect(await storeOutbox(t.orgId)).toEqual([]);
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

	it("the request is interrupted after the events were applied but before their rows were deleted: the alarm applies them again, and each entry is written once", async () => {
		const t = await seedTenant();
		const interrupted = await interruptApply(t.orgId, "after");
		const as = { token: t.admin.token };
		const cat = await call<Body<"POST /api/orgs/:orgId/categories">>("POST", `${t.base}/categories`, { ...as, body: { name: "C", slug: slug("c") } });
		expect(cat.status, cat.text).toBe(201);
		expect((await call("PATCH", `${t.base}/categories/${cat.json.id}`, { ...as, body: { name: "C2" } })).status).toBe(200);
		expect(await chain(t.orgId)).toEqual(["category.created", "category.updated"]);
		const left = await storeOutbox(t.orgId);
		expect(left.map((r) => JSON.parse(r.body).action)).toEqual(["category.created", "category.updated"]);

		interrupted.mockRestore();
		await drainStore(t.orgId);
		expect(await storeOutbox(t.orgId)).toEqual([]);
		// A copy of an applied entry's row written again directly (a second interrupted relay) is harmless too.
		await storeSql(
			t.orgId,
			"INSERT INTO outbox (id, organization_id, body, created_at, attempts, status) VALUES (?, ?, ?, ?, 0, 'pending')",
			left[0]!.id,
			t.orgId,
			left[0]!.body,
			Date.now(),
		);
		// The store's next request arms its alarm for the pending row.
		expect((await call("GET", `${t.base}/categories`, as)).status).toBe(200);
		await drainStore(t.orgId);
		expect(await chain(t.orgId)).toEqual(["category.created", "category.updated"]);
		const verify = await call<Body<"GET /api/orgs/:orgId/audit-logs/verify">>("GET", `${t.base}/audit-logs/verify`, as);
		expect(verify.json).toMatchObject({ intact: true, entries: 2 });
	});

	it("a change that does not commit writes no outbox row (409 duplicate, 412 stale If-Match, 409 insufficient stock)", async () => {
		const t = await seedTenant();
		const sku = uid("D");
		const body = { name: "D", sku, priceMinor: 1, currency: "INR", status: "active", stock: 1 };
		const first = await call<Body<"POST /api/orgs/:orgId/products">>("POST", `${t.base}/products`, { token: t.admin.token, body });
		expect(first.status).toBe(201);
		expect((await call("POST", `${t.base}/products`, { token: t.admin.token, body })).status).toBe(409);
		const p = `${t.base}/products/${first.json.id}`;
		const stale = await call("PATCH", p, { token: t.admin.token, body: { name: "E" }, headers: { "if-match": 'W/"7"' } });
		expect(stale.status, stale.text).toBe(412);
		expect((await call("POST", `${p}/inventory`, { token: t.admin.token, body: { delta: -5 } })).status).toBe(409);
		// Only the one create was written (and applied, so its rows are gone); a change's rows never outlive a rollback.
		expect(await storeOutbox(t.orgId)).toEqual([]);
		expect(await chain(t.orgId)).toEqual(["product.created"]);
		// With the apply failing, any row written would stay in the outbox: the refused changes leave none.
		const interrupted = await interruptApply(t.orgId, "before");
		expect((await call("POST", `${t.base}/products`, { token: t.admin.token, body })).status).toBe(409);
		expect((await call("PATCH", p, { token: t.admin.token, body: { name: "E" }, headers: { "if-match": 'W/"7"' } })).status).toBe(412);
		expect(interrupted).not.toHaveBeenCalled();
		expect(await storeOutbox(t.orgId)).toEqual([]);
		expect(await chain(t.orgId)).toEqual(["product.created"]);
	});

	it("deliveries leave the store through its alarm: while the queue refuses them they stay pending in the store's outbox, and a later alarm sends them", async () => {
		const receiver = fakeReceiver();
		stubNetwork(vi, { routes: receiver.routes });
		const t = await seedTenant({ plan: "pro" });
		const ep = await call("POST", `${t.base}/webhooks`, {
			token: t.admin.token,
			body: { url: "https://hooks.tenant.example.com/in", eventTypes: ["order.created"] },
		});
		expect(ep.status, ep.text).toBe(201);
		const down = vi.spyOn(env.TENANT_EVENTS, "sendBatch").mockRejectedValue(new Error("queue unavailable"));
		const product = await call<Body<"POST /api/orgs/:orgId/products">>("POST", `${t.base}/products`, {
			token: t.admin.token,
			body: { name: "W", sku: uid("W"), priceMinor: 500, currency: "INR", status: "active", stock: 2 },
		});
		expect(product.status, product.text).toBe(201);
		const order = await call("POST", `${t.base}/orders`, { token: t.admin.token, body: { items: [{ productId: product.json.id, quantity: 1 }] } });
		expect(order.status, order.text).toBe(201);
		// The changes and their entries do not wait for the queue.
		expect(await chain(t.orgId)).toEqual(["webhook_endpoint.created", "product.created", "order.created"]);
		// The order's event fanned out into one delivery, which waits in the store's outbox: the alarm tried
		// to hand it to the queue and kept it.
		const [delivery, ...more] = await storeSql<{ id: string; status: string }>(t.orgId, "SELECT id, status FROM webhook_deliveries");
		expect(more).toEqual([]);
		expect(delivery).toMatchObject({ status: "pending" });
		const parked = await eventually(
			() => storeOutbox(t.orgId),
			(rows) => rows.some((r) => r.lastError !== null),
		);
		expect(parked).toEqual([expect.objectContaining({ id: delivery!.id, status: "pending", attempts: 0, lastError: "queue unavailable" })]);
		expect(JSON.parse(parked[0]!.body)).toEqual({ kind: "webhook.deliver", deliveryId: delivery!.id, organizationId: t.orgId });
		expect(down).toHaveBeenCalled();
		down.mockRestore();

		const sent = captureTenantEvents(vi);
		await drainStore(t.orgId);
		expect(ofOrg(sent, t.orgId)).toEqual([{ kind: "webhook.deliver", deliveryId: delivery!.id, organizationId: t.orgId, relays: 1 }]);
		expect(await storeOutbox(t.orgId)).toEqual([]);
		await deliverTenant(ofOrg(sent, t.orgId));
		expect(receiver.state.received).toHaveLength(1);
		expect(JSON.parse(receiver.state.received[0]!.body)).toMatchObject({ type: "order.created" });
		expect(await storeSql(t.orgId, "SELECT status, attempts FROM webhook_deliveries")).toEqual([{ status: "succeeded", attempts: 1 }]);
	});

	it(`an event that goes through the queue and always fails stops after ${OUTBOX_MAX_RELAYS} relays and stays failed, with no further queue traffic`, async () => {
		const t = await seedTenant();
		const operator = await signToken({ userId: TEST_OPERATOR });
		let sent = captureTenantEvents(vi);
		// An operator's change is made in the directory (D1): its entry is committed in D1's outbox with it,
		// relayed to the tenant-events queue, and applied in the tenant's store by the consumer.
		const res = await call("PATCH", `/api/admin/orgs/${t.orgId}`, { token: operator, body: { rateLimitPerMinute: 50 }, settle: true });
		expect(res.status, res.text).toBe(200);
		let relays = 0;
		// Each relay is retried by the queue until max_retries, then dead-lettered (the consumer always fails):
		// the dead-letter consumer gets it back. Then the cron runs again.
		for (let cycle = 0; cycle < OUTBOX_MAX_RELAYS + 5; cycle++) {
			const ours = ofOrg(sent, t.orgId);
			relays += ours.length;
			if (ours.length > 0) {
				expect(ours).toEqual([expect.objectContaining({ action: "organization.operator_updated", relays: relays })]);
				const dlq = await deliverTenant(ours, { queue: "tenant-events-dlq" });
				expect(dlq.explicitAcks).toHaveLength(1);
			}
			vi.restoreAllMocks();
			sent = captureTenantEvents(vi);
			await runCron();
		}
		expect(relays).toBe(OUTBOX_MAX_RELAYS);
		expect(await d1Outbox(t.orgId)).toEqual([
			expect.objectContaining({ status: "failed", attempts: OUTBOX_MAX_RELAYS, lastError: `dead-lettered after relay ${OUTBOX_MAX_RELAYS}` }),
		]);
		// The failed row is left alone by the cron, and the entry never reached the store.
		expect(ofOrg(sent, t.orgId)).toEqual([]);
		expect(await chain(t.orgId)).toEqual([]);

		// An operator sees it and re-arms it; the next cron run sends it again.
		const failed = await call<Body<"GET /api/admin/outbox">>("GET", "/api/admin/outbox?status=failed&limit=100", { token: operator });
		expect(failed.status, failed.text).toBe(200);
		const row = failed.json.data.find((r) => r.organizationId === t.orgId)!;
		expect(row).toMatchObject({ status: "failed", attempts: OUTBOX_MAX_RELAYS, event: { kind: "audit", action: "organization.operator_updated" } });
		expect((await call("POST", `/api/admin/outbox/${row.id}/replay`, { token: t.admin.token })).status).toBe(403);
		expect((await call("POST", "/api/admin/outbox/aud_missing/replay", { token: operator })).status).toBe(404);
		const replay = await call("POST", `/api/admin/outbox/${row.id}/replay`, { token: operator });
		expect(replay.status, replay.text).toBe(202);
		await runCron();
		expect(ofOrg(sent, t.orgId)).toEqual([expect.objectContaining({ action: "organization.operator_updated", relays: 1 })]);
		await deliverTenant(ofOrg(sent, t.orgId));
		expect(await auditActions(t.orgId, t.admin.token)).toEqual(["organization.operator_updated"]);
	});
});
