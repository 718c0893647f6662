import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, type MockInstance, vi } from "vitest";
import { createDb } from "../../src/db/client";
import worker from "../../src/index";
import type { WebhookMessage } from "../../src/queue/messages";
import type { TenantEvent } from "../../src/queue/tenant-events";
import { createLogger } from "../../src/lib/logger";
import { drainOutbox } from "../../src/queue/tenant-consumer";
import { createApiKey } from "../../src/services/api-keys";
import { systemAudit } from "../../src/services/events-bus";
import { changeLog, OUTBOX_MAX_RELAYS } from "../../src/services/outbox";
import type { TenantStoreObject } from "../../src/tenant-store/object";
import { envelope, membershipData } from "../helpers/clerk";
import { fakeClerkApi } from "../helpers/clerk-api";
import { uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { fakeRazorpay, fakeReceiver, stubNetwork } from "../helpers/network";
import { deliver, messageFor } from "../helpers/queue";
import { type Body, call } from "../helpers/request";
import { drainStore, inStore, runStoreAlarm, storeSql } from "../helpers/store";
import { captureTenantEvents, deliverTenant } from "../helpers/tenant-queue";
import { seedTenant, type Tenant } from "../helpers/tenant";
import { TEST_OPERATOR, TEST_RAZORPAY } from "../helpers/vars";
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

/** A tenant whose store's apply is interrupted (`when`: see interruptApply), and a category it created and renamed meanwhile. */
async function categoryChanges(when: "before" | "after", tenant?: Tenant) {
	const t = tenant ?? (await seedTenant());
	const interrupted = await interruptApply(t.orgId, when);
	const as = { token: t.admin.token };
	const cat = await call<Body<"POST /api/orgs/:orgId/categories">>("POST", `${t.base}/categories`, { ...as, body: { name: "C", slug: slug("c") } });
	expect(cat.status, cat.text).toBe(201);
	expect((await call("PATCH", `${t.base}/categories/${cat.json.id}`, { ...as, body: { name: "C2" } })).status).toBe(200);
	return { t, interrupted, as, cat };
}

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
		const { t, interrupted, as, cat } = await categoryChanges("before");
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
		// (Pending; `attempts` counts the alarm's failed tries meanwhile.)
		expect(pending.every((r) => r.status === "pending")).toBe(true);
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
		const { t, interrupted, as } = await categoryChanges("after");
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

	it("an event left in the outbox that keeps failing holds back none of the others: the alarm applies the rest and keeps it pending with its error; a body that is not JSON is kept failed", async () => {
		const t0 = await seedTenant();
		// The runtime's own runs of the alarm are held off (one applying the rows while the interruption ends
		// would race this test): it runs the alarm itself, once.
		let held!: MockInstance<TenantStoreObject["alarm"]>;
		await inStore(t0.orgId, (store) => {
			held = vi.spyOn(store, "alarm").mockResolvedValue(undefined);
		});
		const { t, interrupted, as } = await categoryChanges("before", t0);
		interrupted.mockRestore();
		held.mockRestore();
		// Its runs meanwhile did nothing (and used up the alarm): set again, for runStoreAlarm below.
		await inStore(t.orgId, (_store, state) => state.storage.setAlarm(Date.now() + 3_600_000));
		const left = await storeOutbox(t.orgId);
		expect(left.map((r) => JSON.parse(r.body).action)).toEqual(["category.created", "category.updated"]);
		// An entry the chain refuses (no action: audit_logs.action is NOT NULL), older than both, and a row whose
		// body is not JSON: neither may keep the two above out of the chain.
		const poison = { ...JSON.parse(left[0]!.body), id: uid("aud"), action: null };
		const insert = "INSERT INTO outbox (id, organization_id, body, created_at, attempts, status) VALUES (?, ?, ?, ?, 0, 'pending')";
		await storeSql(t.orgId, insert, poison.id, t.orgId, JSON.stringify(poison), 1);
		await storeSql(t.orgId, insert, uid("bad"), t.orgId, "{not json", 2);

		expect(await runStoreAlarm(t.orgId)).toBe(true);
		expect(await chain(t.orgId)).toEqual(["category.created", "category.updated"]);
		const after = await storeOutbox(t.orgId);
		expect(after).toEqual([
			expect.objectContaining({ id: poison.id, status: "pending", attempts: 1, lastError: expect.stringMatching(/^audit append failed: .*NOT NULL constraint failed: audit_logs.action/) }),
			expect.objectContaining({ body: "{not json", status: "failed", lastError: expect.any(String) }),
		]);
		// Tried again later, not in a loop; operator health hears of both.
		const retryAt = await inStore(t.orgId, (_store, state) => state.storage.getAlarm());
		expect(retryAt).toBeGreaterThan(Date.now() + 1_000);
		const health = await env.DB.prepare("SELECT outbox_pending AS pending, outbox_failed AS failed FROM store_health WHERE organization_id = ?")
			.bind(t.orgId)
			.first();
		expect(health).toEqual({ pending: 1, failed: 1 });
		const verify = await call<Body<"GET /api/orgs/:orgId/audit-logs/verify">>("GET", `${t.base}/audit-logs/verify`, as);
		expect(verify.json).toMatchObject({ intact: true, entries: 2 });
		// A newer event left behind is read before the failing one (which has an attempt more), and applied.
		const newer = { ...JSON.parse(left[1]!.body), id: uid("aud"), action: "category.touched" };
		await storeSql(t.orgId, insert, newer.id, t.orgId, JSON.stringify(newer), Date.now());
		// (The runtime may run the alarm too: the verify call's checkpoint write armed it. Set, then run here.)
		await inStore(t.orgId, (_store, state) => state.storage.setAlarm(Date.now() + 3_600_000));
		expect(await runStoreAlarm(t.orgId)).toBe(true);
		expect(await chain(t.orgId)).toEqual(["category.created", "category.updated", "category.touched"]);
		const still = (await storeOutbox(t.orgId)).find((r) => r.id === poison.id);
		expect(still?.status).toBe("pending");
		expect(still?.attempts).toBeGreaterThanOrEqual(2);
		// One that keeps failing is tried again later each time (5 s doubled per attempt), at most an hour later.
		await storeSql(t.orgId, "UPDATE outbox SET attempts = 30 WHERE id = ?", poison.id);
		await inStore(t.orgId, (_store, state) => state.storage.setAlarm(Date.now() + 3_600_000));
		const ran = Date.now();
		expect(await runStoreAlarm(t.orgId)).toBe(true);
		const later = await inStore(t.orgId, (_store, state) => state.storage.getAlarm());
		expect(later).toBeGreaterThanOrEqual(ran + 3_600_000);
		expect(later).toBeLessThanOrEqual(Date.now() + 3_600_000);
		// No alarm keeps firing for it in later tests.
		await storeSql(t.orgId, "DELETE FROM outbox");
		await inStore(t.orgId, (_store, state) => state.storage.deleteAlarm());
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

	it("a delivery attempt dead-lettered (its retries spent waiting) is parked in the outbox, not dropped", async () => {
		const t = await seedTenant();
		const deliveryId = uid("dlv");
		const dlq = await deliverTenant([{ kind: "webhook.deliver", deliveryId, organizationId: t.orgId, relays: 1 }], { queue: "tenant-events-dlq" });
		expect(dlq.explicitAcks).toHaveLength(1);
		expect(await d1Outbox(t.orgId)).toEqual([expect.objectContaining({ id: deliveryId, status: "pending", attempts: 1 })]);
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

// --- changes made in the directory (D1): payments, members, API keys, webhook consumer -------------------

/** The tenant-events queue refuses every send until restored. */
const queueDown = () => vi.spyOn(env.TENANT_EVENTS, "sendBatch").mockRejectedValue(new Error("queue unavailable"));

/** An outbox row's event in a word: `audit <action>` or `event <type>`. */
const described = (body: string) => {
	const m = JSON.parse(body) as TenantEvent;
	return m.kind === "audit" ? `audit ${m.action}` : m.kind === "webhook.event" ? `event ${m.type}` : m.kind;
};
const sorted = (list: string[]) => [...list].sort();

/**
 * With the queue back: the cron relays the organization's pending D1 outbox rows and the consumer applies
 * them in the tenant's store. Then, to show each entry lands exactly once: a second cron run finds nothing
 * to send, and the same messages delivered again (a relay and the cron racing) change nothing. Returns
 * what the cron relayed.
 */
async function relayByCron(orgId: string): Promise<TenantEvent[]> {
	const sent = captureTenantEvents(vi);
	await runCron();
	const ours = ofOrg(sent, orgId);
	expect(await d1Outbox(orgId)).toEqual([]);
	const applied = await deliverTenant(ours);
	expect(applied.explicitAcks).toHaveLength(ours.length);
	await runCron();
	expect(ofOrg(sent, orgId)).toHaveLength(ours.length);
	expect((await deliverTenant(ours)).explicitAcks).toHaveLength(ours.length);
	return ours;
}

/** Every D1 outbox row of the organization is pending, never relayed, with the queue's refusal recorded. */
async function parkedByRefusal(orgId: string): Promise<string[]> {
	const rows = await d1Outbox(orgId);
	expect(rows.every((r) => r.status === "pending" && r.attempts === 0 && r.lastError === "queue unavailable"), JSON.stringify(rows)).toBe(true);
	return rows.map((r) => described(r.body));
}

const hex = (buf: ArrayBuffer) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
async function hmac(secret: string, data: string) {
	const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
	return hex(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(data)));
}

describe("transactional outbox: changes made in the directory (D1)", () => {
	it("API keys: with the queue refusing the relay, each change's entry and event wait in D1's outbox (written with the change), and the cron brings each into the store's chain exactly once", async () => {
		const t = await seedTenant();
		const as = { token: t.admin.token, settle: true };
		const down = queueDown();
		const created = await call<Body<"POST /api/orgs/:orgId/api-keys">>("POST", `${t.base}/api-keys`, {
			...as,
			body: { name: "ci", permissions: ["org:products:read"] },
		});
		expect(created.status, created.text).toBe(201);
		const key = `${t.base}/api-keys/${created.json.id}`;
		const renamed = await call("PATCH", key, { ...as, body: { name: "ci-2" } });
		expect(renamed.status, renamed.text).toBe(200);
		const rotated = await call<Body<"POST /api/orgs/:orgId/api-keys/:keyId/rotate">>("POST", `${key}/rotate`, as);
		expect(rotated.status, rotated.text).toBe(200);
		expect((await call("DELETE", key, as)).status).toBe(204);
		// Refused changes write nothing: an unknown key, a second revocation.
		expect((await call("PATCH", key, { ...as, body: { name: "x" } })).status).toBe(404);
		expect((await call("DELETE", key, as)).status).toBe(404);
		expect(down).toHaveBeenCalledTimes(4);
		const actions = ["created", "updated", "rotated", "revoked"].map((a) => `api_key.${a}`);
		expect(sorted(await parkedByRefusal(t.orgId))).toEqual(sorted(actions.flatMap((a) => [`audit ${a}`, `event ${a}`])));
		expect(await chain(t.orgId)).toEqual([]);
		down.mockRestore();

		const relayed = await relayByCron(t.orgId);
		expect(sorted(await chain(t.orgId))).toEqual(sorted(actions));
		expect(sorted(relayed.filter((m) => m.kind === "webhook.event").map((m) => (m.kind === "webhook.event" ? m.type : "")))).toEqual(sorted(actions));
		// The entries carry the key as each batch left it (computed in the batch), never its secret or hash.
		const list = await call<AuditList>("GET", `${t.base}/audit-logs?limit=100`, { token: t.admin.token });
		const entry = (a: string) => list.json.data.find((e) => e.action === a)!;
		expect(entry("api_key.updated")).toMatchObject({ before: { name: "ci" }, after: { name: "ci-2", last4: created.json.last4 } });
		expect(entry("api_key.rotated")).toMatchObject({ before: { last4: created.json.last4 }, after: { name: "ci-2", last4: rotated.json.last4 } });
		expect(entry("api_key.rotated").after).toEqual(expect.objectContaining({ previousKeyExpiresAt: rotated.json.previousKeyExpiresAt }));
		expect(entry("api_key.revoked")).toMatchObject({ before: { id: created.json.id }, actor: { type: "user", id: t.admin.id } });
		expect(JSON.stringify(list.json)).not.toContain(created.json.key);
		const updatedEvent = relayed.find((m) => m.kind === "webhook.event" && m.type === "api_key.updated");
		expect(updatedEvent).toMatchObject({ data: { id: created.json.id, name: "ci-2", prefix: "sk_live_", permissions: ["org:products:read"], actor: t.admin.id } });
	});

	it("API keys: a change whose relay never ran (the isolate ended after the commit) is in D1's outbox, and the cron brings it into the chain once", async () => {
		const t = await seedTenant();
		const meta = { requestId: "req_gone", ip: null, country: null, userAgent: null, actor: t.admin.id };
		const log = changeLog(meta);
		const { row } = await createApiKey(
			createDb(env.DB),
			{ id: t.orgId, plan: "free", apiKeyLimit: 2 },
			{ actor: t.admin.id, permissions: ["org:products:read"], expiresAt: null, admin: true },
			{ name: "orphan", permissions: ["org:products:read"] },
			log,
		);
		// Committed with the key; nothing relayed.
		expect(log.written.map((r) => described(r.body))).toEqual(["audit api_key.created", "event api_key.created"]);
		const rows = await d1Outbox(t.orgId);
		expect(rows).toEqual(log.written.map((r) => expect.objectContaining({ id: r.id, status: "pending", attempts: 0, lastError: null })));
		await relayByCron(t.orgId);
		const list = await call<AuditList>("GET", `${t.base}/audit-logs`, { token: t.admin.token });
		expect(list.json.data).toEqual([
			expect.objectContaining({ action: "api_key.created", target: { type: "api_key", id: row.id }, context: expect.objectContaining({ requestId: "req_gone" }) }),
		]);
	});

	it("payments: order creation and verification commit their entries with the change; with the queue refusing, the cron brings each into the chain once (a repeated verify adds none)", async () => {
		const razorpay = fakeRazorpay();
		stubNetwork(vi, { routes: razorpay.routes });
		const t = await seedTenant({ members: { admin: { role: "org:admin", activeOrg: true } } });
		const as = { token: t.admin.token, settle: true };
		const down = queueDown();
		const order = await call<Body<"POST /api/payments/orders">>("POST", "/api/payments/orders", { ...as, body: { amount: 10000 } });
		expect(order.status, order.text).toBe(201);
		const paymentId = `pay_${uid("p").slice(-14)}`;
		const body = {
			razorpay_order_id: order.json.razorpayOrderId,
			razorpay_payment_id: paymentId,
			razorpay_signature: await hmac(TEST_RAZORPAY.keySecret, `${order.json.razorpayOrderId}|${paymentId}`),
		};
		// A bad signature changes nothing; its entry (nothing to batch it with) is parked by the refused send.
		expect((await call("POST", "/api/payments/verify", { ...as, body: { ...body, razorpay_signature: "0".repeat(64) } })).status).toBe(400);
		expect((await call("POST", "/api/payments/verify", { ...as, body })).status).toBe(200);
		// Verified again: nothing changes, so no second entry.
		expect((await call("POST", "/api/payments/verify", { ...as, body })).status).toBe(200);
		expect(down).toHaveBeenCalled();
		const parked = await d1Outbox(t.orgId);
		expect(sorted(parked.map((r) => described(r.body)))).toEqual(["audit payment.verification_failed", "audit payment.verified", "audit payment_order.created"]);
		expect(parked.every((r) => r.status === "pending")).toBe(true);
		down.mockRestore();

		await relayByCron(t.orgId);
		expect(sorted(await chain(t.orgId))).toEqual(["payment.verification_failed", "payment.verified", "payment_order.created"]);
		const list = await call<AuditList>("GET", `${t.base}/audit-logs?limit=100`, { token: t.admin.token });
		// `before` is the status the batch found.
		expect(list.json.data.find((e) => e.action === "payment.verified")).toMatchObject({
			before: { status: "CREATED" },
			after: { status: "PAID", paymentId },
			target: { type: "payment_order", id: order.json.paymentOrderId },
		});
		expect(list.json.data.find((e) => e.action === "payment_order.created")).toMatchObject({ after: { id: order.json.razorpayOrderId, amount: 10000 } });
	});

	it("members and invitations: the mirror write and its entry commit together; with the queue refusing, the cron brings each entry into the chain once", async () => {
		const clerk = fakeClerkApi();
		stubNetwork(vi, { routes: clerk.routes });
		const t = await seedTenant({ plan: "pro" });
		const as = { token: t.admin.token, settle: true };
		const down = queueDown();
		const invited = await call<Body<"POST /api/orgs/:orgId/invitations">>("POST", `${t.base}/invitations`, {
			...as,
			body: { emailAddress: "new.person@example.com", role: "org:member" },
		});
		expect(invited.status, invited.text).toBe(201);
		expect((await call("DELETE", `${t.base}/invitations/${invited.json.id}`, as)).status).toBe(200);
		expect((await call("PATCH", `${t.base}/members/${t.member.id}`, { ...as, body: { role: "org:admin" } })).status).toBe(200);
		expect((await call("DELETE", `${t.base}/members/${t.member.id}`, as)).status).toBe(204);
		// Refused before Clerk is called: nothing written.
		expect((await call("DELETE", `${t.base}/members/${t.member.id}`, as)).status).toBe(404);
		const actions = ["invitation.created", "invitation.revoked", "member.role_changed", "member.removed"];
		expect(sorted(await parkedByRefusal(t.orgId))).toEqual(sorted(actions.map((a) => `audit ${a}`)));
		down.mockRestore();

		await relayByCron(t.orgId);
		expect(sorted(await chain(t.orgId))).toEqual(sorted(actions));
		const list = await call<AuditList>("GET", `${t.base}/audit-logs?limit=100`, { token: t.admin.token });
		expect(list.json.data.find((e) => e.action === "member.role_changed")).toMatchObject({
			actor: { type: "user", id: t.admin.id },
			target: { type: "membership", id: t.member.id },
			before: { role: "org:member" },
			after: { role: "org:admin" },
		});
	});

	it("webhook consumer: an applied event's entries are outbox rows of its own batch (a stale one has none); with the queue refusing, the cron brings each into the chain once", async () => {
		const t = await seedTenant();
		// An order to capture (Razorpay), the member's membership (Clerk) and their sign-in.
		const razorpayOrderId = `order_${uid("o").slice(-14)}`;
		const orderId = uid("pord");
		await env.DB.prepare(
			"INSERT INTO payment_orders (id, organization_id, razorpay_order_id, amount, currency, status, created_by, created_at, updated_at) VALUES (?, ?, ?, 5000, 'INR', 'CREATED', ?, 1, 1)",
		)
			.bind(orderId, t.orgId, razorpayOrderId, t.admin.id)
			.run();
		const paymentId = `pay_${uid("p").slice(-14)}`;
		const raw = JSON.stringify({
			entity: "event",
			event: "payment.captured",
			payload: { payment: { entity: { id: paymentId, amount: 5000, currency: "INR", status: "captured", order_id: razorpayOrderId } } },
			created_at: Math.floor(Date.now() / 1000),
		});
		const captured: WebhookMessage = { source: "razorpay", svixId: uid("rzp"), type: "payment.captured", timestamp: Date.now(), receivedAt: Date.now(), body: raw };
		const membershipId = uid("orgmem");
		const promoted = messageFor(envelope("organizationMembership.updated", membershipData(membershipId, t.orgId, t.member.id, { role: "org:admin", updatedAt: 1_700_000_000_000 })));
		const older = messageFor(envelope("organizationMembership.updated", membershipData(membershipId, t.orgId, t.member.id, { role: "org:member", updatedAt: 1_600_000_000_000 })));
		const signedIn = messageFor(envelope("session.created", { id: uid("sess"), object: "session", user_id: t.member.id }));

		const down = queueDown();
		const result = await deliver([captured, promoted, signedIn]);
		expect(result.explicitAcks).toHaveLength(3);
		// The older update arrives after the newer one: stale, nothing to audit.
		expect((await deliver([older])).explicitAcks).toHaveLength(1);
		// A redelivery of an applied event is a duplicate: no second row.
		expect((await deliver([promoted])).explicitAcks).toHaveLength(1);
		expect(down).toHaveBeenCalled();
		const expected = ["audit membership.updated", "audit payment.captured", "audit user.signed_in", "event membership.updated"];
		expect(sorted(await parkedByRefusal(t.orgId))).toEqual(expected);
		const ids = (await d1Outbox(t.orgId)).map((r) => r.id);
		// Ids derive from the svix id (a capture's from its payment: Razorpay reports one capture twice), so a replay of the same event is the same row.
		expect(sorted(ids)).toEqual(sorted([`aud_captured_${paymentId}`, `aud_${promoted.svixId}`, `evt_${promoted.svixId}`, `aud_${signedIn.svixId}_${t.orgId}`]));
		down.mockRestore();

		await relayByCron(t.orgId);
		expect(sorted(await chain(t.orgId))).toEqual(["membership.updated", "payment.captured", "user.signed_in"]);
		const list = await call<AuditList>("GET", `${t.base}/audit-logs?limit=100`, { token: t.admin.token });
		expect(list.json.data.find((e) => e.action === "payment.captured")).toMatchObject({
			actor: { type: "system", id: null },
			target: { type: "payment_order", id: orderId },
			after: { razorpayOrderId, paymentId, amount: 5000, currency: "INR" },
		});
		expect(list.json.data.find((e) => e.action === "user.signed_in")).toMatchObject({ target: { type: "user", id: t.member.id } });
	});
});

describe("D1 outbox drain within the queue's limits", () => {
	it("a backlog over one queue batch (256 KB) drains in several sends; a row too large for any queue message is kept failed and holds back none of the rest", async () => {
		const t = await seedTenant();
		const db = createDb(env.DB);
		const park = (id: string, at: number, bytes: number) =>
			env.DB.prepare("INSERT INTO outbox (id, organization_id, body, created_at, attempts, status) VALUES (?, ?, ?, ?, 0, 'pending')")
				.bind(id, t.orgId, JSON.stringify(systemAudit({ id, organizationId: t.orgId, action: "product.updated", after: { description: "x".repeat(bytes) } })), at)
				.run();
		// The oldest row is over the queue's 128 KB per message; forty rows of 10 KB behind it are 400 KB.
		const huge = uid("aud");
		await park(huge, 1, 130_000);
		const ids = Array.from({ length: 40 }, () => uid("aud"));
		for (const [i, id] of ids.entries()) await park(id, 2 + i, 10_000);
		const logger = createLogger("silent");
		// The real queue (its limits are Miniflare's): each cron run sends what fits, oldest first.
		const ours = async () =>
			(await env.DB.prepare("SELECT id, status, last_error AS lastError FROM outbox WHERE organization_id = ? ORDER BY created_at").bind(t.orgId).all<OutboxRow>())
				.results;
		for (let run = 0; run < 5 && (await ours()).some((r) => r.status === "pending"); run++) await drainOutbox(env, db, logger);
		const left = await ours();
		expect(left).toEqual([{ id: huge, status: "failed", lastError: expect.stringMatching(/^too large for a queue message: \d{6} bytes \(at most 120000\)$/) }]);
		// Nothing else was lost: the consumer brings every sent entry into the tenant's chain.
		const entries = await eventually(
			async () => (await storeSql<{ id: string }>(t.orgId, "SELECT id FROM audit_logs WHERE action = 'product.updated'")).length,
			(n) => n === ids.length,
			15_000,
		);
		expect(entries).toBe(ids.length);
	});
});
