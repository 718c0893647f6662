import { env } from "cloudflare:workers";
import { Webhook } from "svix";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { tenantEvent } from "../../src/services/events-bus";
import { EVENT_RETENTION_DAYS } from "../../src/services/retention";
import { DISABLE_AFTER_FAILING_MS, DISABLE_AFTER_FAILURES, MAX_ATTEMPTS, refuseUrl } from "../../src/services/outgoing-webhooks";
import { uid } from "../helpers/factories";
import { fakeDns, fakeReceiver, type Handler, stubNetwork } from "../helpers/network";
import { type Body, call, type Problem } from "../helpers/request";
import { drainStore, inStore, recordApplied, runStoreAlarm, storeSql } from "../helpers/store";
import { captureTenantEvents, deliverTenant } from "../helpers/tenant-queue";
import { seedTenant } from "../helpers/tenant";
import { eventually } from "../helpers/wait";

/** The tenant's receiving server is outside the Worker: stubbed at the network boundary. */
let receiver: ReturnType<typeof fakeReceiver>;
beforeEach(() => {
	receiver = fakeReceiver();
	stubNetwork(vi, { routes: receiver.routes });
});

type Endpoint = Body<"GET /api/orgs/:orgId/webhooks/:endpointId">;
type Events = ReturnType<typeof captureTenantEvents>;
type Deliveries = Body<"GET /api/orgs/:orgId/webhooks/:endpointId/deliveries">;

/**
 * The deliveries the tenant's store handed to the tenant-events queue: the store fans an event out into
 * deliveries, which wait in its outbox until its alarm sends them (drainStore runs it).
 */
async function sentDeliveries(orgId: string, sent: Events) {
	await drainStore(orgId);
	return sent.filter((m) => m.kind === "webhook.deliver" && m.organizationId === orgId);
}

const deliveryRows = (orgId: string) =>
	storeSql<{ id: string; endpointId: string; eventId: string }>(orgId, "SELECT id, endpoint_id AS endpointId, event_id AS eventId FROM webhook_deliveries ORDER BY created_at, id");

const proTenant = async () => {
	const t = await seedTenant({ plan: "pro" });
	return { ...t, token: t.admin.token, base: `${t.base}/webhooks` };
};

/** A pro tenant whose one endpoint (every event type) answers `status`, and the delivery of one event to it, not yet attempted. */
async function oneDelivery(status: number) {
	const t = await proTenant();
	const ep = await register(t, ["*"]);
	receiver.state.status = status;
	const sent = captureTenantEvents(vi);
	await deliverTenant([tenantEvent(t.orgId, "plan.changed", { plan: "pro" })]);
	const [msg] = await sentDeliveries(t.orgId, sent);
	expect(msg).toBeDefined();
	return { t, ep, msg: msg! };
}

async function register(t: Awaited<ReturnType<typeof proTenant>>, eventTypes = ["order.created"]) {
	const res = await call<Body<"POST /api/orgs/:orgId/webhooks">>("POST", t.base, {
		token: t.token,
		body: { url: "https://hooks.tenant.example.com/in", eventTypes },
	});
	expect(res.status, res.text).toBe(201);
	return res.json;
}

describe("endpoint registration", () => {
	it("the secret is shown once; listing and reading never show it", async () => {
		const t = await proTenant();
		const ep = await register(t);
		expect(ep.secret).toMatch(/^whsec_/);
		const list = await call<Body<"GET /api/orgs/:orgId/webhooks">>("GET", t.base, { token: t.token });
		expect(list.json.data).toHaveLength(1);
		expect(list.text).not.toContain(ep.secret);
		expect((await call("GET", `${t.base}/${ep.id}`, { token: t.token })).text).not.toContain(ep.secret);
	});

	it.each([
		"ftp://hooks.example.com/x",
		"http://localhost:8080/x",
		"https://127.0.0.1/x",
		"https://10.1.2.3/x",
		"https://192.168.0.10/x",
		"https://169.254.169.254/latest/meta-data",
		"https://172.16.5.4/x",
		"https://[::1]/x",
		"https://[fd00::1]/x",
		"https://user:pass@hooks.example.com/x",
		"https://service.internal/x",
		"https://intranet/x",
		// The rest of RFC 6890's special-purpose table, and IPv6 literals that carry an IPv4 address.
		"http://198.51.100.7/x",
		"https://203.0.113.10:8443/hook",
		"http://192.0.2.1/x",
		"http://100.64.0.1/x",
		"http://0x7f.1/x",
		"http://[::127.0.0.1]/",
		"http://[::ffff:169.254.169.254]/",
		"http://[::ffff:a9fe:a9fe]/latest",
		"http://[64:ff9b::a9fe:a9fe]/",
		"http://[2001:db8::1]/",
		// An empty label: the URL parser keeps such a name as written (not as an IP literal, not as localhost).
		"http://localhost../x",
		"https://svc.internal../x",
		"http://127.0.0.1../x",
		"http://169.254.169.254../latest",
		"https://hooks..example.com/x",
	])("refuses %s", async (url) => {
		const t = await proTenant();
		const res = await call<Problem>("POST", t.base, { token: t.token, body: { url, eventTypes: ["*"] } });
		expect(res.status, res.text).toBe(400);
		expect(res.json.errors?.[0]?.path).toBe("url");
	});

	it("accepts public https and http hosts", () => {
		expect(refuseUrl("https://hooks.tenant.example.com/in")).toBeNull();
		expect(refuseUrl("http://93.184.216.34:8443/hook")).toBeNull();
		expect(refuseUrl("https://[2606:4700:4700::1111]/hook")).toBeNull();
	});

	it("the free plan answers 402; members without org:webhooks:manage get 403", async () => {
		const t = await seedTenant();
		const res = await call<Problem>("GET", `${t.base}/webhooks`, { token: t.admin.token });
		expect(res.status, res.text).toBe(402);
		expect(res.json).toMatchObject({ status: 402, title: "Plan upgrade required" });
		expect(res.json.detail).toContain("pro");
		const p = await proTenant();
		expect((await call("GET", p.base, { token: p.member.token })).status).toBe(403);
	});
});

describe("delivery", () => {
	it("an order status change reaches subscribed endpoints, signed per Standard Webhooks", async () => {
		const t = await proTenant();
		const ep = await register(t, ["order.created", "order.status_changed"]);
		const other = await call("POST", t.base, {
			token: t.token,
			body: { url: "https://hooks.tenant.example.com/members", eventTypes: ["membership.created"] },
		});
		expect(other.status).toBe(201);
		const sent = captureTenantEvents(vi);
		// The outgoing events a change commits are applied in the tenant's store (not sent to the queue).
		const applied = await recordApplied(vi, t.orgId);
		const p = (
			await call<Body<"POST /api/orgs/:orgId/products">>("POST", `/api/orgs/${t.orgId}/products`, {
				token: t.token,
				body: { name: "W", sku: uid("W"), priceMinor: 500, currency: "INR", status: "active", stock: 3 },
			})
		).json;
		await call("POST", `/api/orgs/${t.orgId}/orders`, { token: t.token, body: { items: [{ productId: p.id, quantity: 1 }] } });
		const events = applied.filter((m) => m.kind === "webhook.event");
		expect(events.map((e) => (e.kind === "webhook.event" ? e.type : ""))).toEqual(["order.created"]);
		expect(sent.filter((m) => m.kind === "webhook.event")).toEqual([]);
		// Fan-out: one delivery per subscribed endpoint (not the membership-only one), sent by the store's alarm.
		expect((await deliveryRows(t.orgId)).map((d) => d.endpointId)).toEqual([ep.id]);
		const deliveries = await sentDeliveries(t.orgId, sent);
		expect(deliveries).toEqual([expect.objectContaining({ deliveryId: (await deliveryRows(t.orgId))[0]!.id })]);
		await deliverTenant(deliveries);
		expect(receiver.state.received).toHaveLength(1);
		const hit = receiver.state.received[0]!;
		const payload = new Webhook(ep.secret).verify(hit.body, {
			"webhook-id": hit.headers.get("webhook-id")!,
			"webhook-timestamp": hit.headers.get("webhook-timestamp")!,
			"webhook-signature": hit.headers.get("webhook-signature")!,
		});
		expect(payload).toBeUndefined(); // svix 2.x verify() throws on a bad signature and returns nothing
		const body = JSON.parse(hit.body);
		expect(body).toMatchObject({ type: "order.created", data: { status: "pending", totalMinor: 500, currency: "INR" } });
		expect(hit.headers.get("webhook-id")).toBe(body.id);
		expect(() =>
			new Webhook(ep.secret).verify(hit.body.replace("500", "1"), {
				"webhook-id": hit.headers.get("webhook-id")!,
				"webhook-timestamp": hit.headers.get("webhook-timestamp")!,
				"webhook-signature": hit.headers.get("webhook-signature")!,
			}),
		).toThrow();
		const log = await call<Deliveries>("GET", `${t.base}/${ep.id}/deliveries`, { token: t.token });
		expect(log.json.data).toEqual([
			expect.objectContaining({ eventType: "order.created", status: "succeeded", attempts: 1, lastStatusCode: 200 }),
		]);
		// A redelivered event message does not deliver twice.
		sent.length = 0;
		const again = await deliverTenant(events);
		expect(again.explicitAcks).toHaveLength(1);
		expect(await deliveryRows(t.orgId)).toHaveLength(1);
		expect(await sentDeliveries(t.orgId, sent)).toHaveLength(0);
	});

	it("an event fanned out whose deliveries were never handed on (what applied it failed after the fan-out) sends them when it comes again, once", async () => {
		const t = await proTenant();
		await register(t, ["*"]);
		const sent = captureTenantEvents(vi);
		const event = tenantEvent(t.orgId, "plan.changed", { plan: "pro" });
		await deliverTenant([event]);
		const [delivery] = await deliveryRows(t.orgId);
		expect(delivery).toBeDefined();
		// The state a failure after the fan-out leaves: the delivery row written, its message nowhere.
		await storeSql(t.orgId, "DELETE FROM outbox");
		sent.length = 0;

		await deliverTenant([event]);
		expect(await deliveryRows(t.orgId)).toEqual([delivery]);
		expect((await sentDeliveries(t.orgId, sent)).map((m) => m.kind === "webhook.deliver" && m.deliveryId)).toEqual([delivery!.id]);
		// Once attempted, the event coming again sends nothing more.
		await storeSql(t.orgId, "UPDATE webhook_deliveries SET attempts = 1, status = 'retrying'");
		sent.length = 0;
		await deliverTenant([event]);
		expect(await sentDeliveries(t.orgId, sent)).toEqual([]);
	});

	it("after a downgrade to a plan without outgoing webhooks, events reach no endpoint (they stay, 402 to manage)", async () => {
		const t = await proTenant();
		await register(t, ["*"]);
		const sent = captureTenantEvents(vi);
		await deliverTenant([tenantEvent(t.orgId, "plan.changed", { plan: "pro" })]);
		expect(await sentDeliveries(t.orgId, sent)).toHaveLength(1);
		await env.DB.prepare("UPDATE organizations SET plan = 'free' WHERE id = ?").bind(t.orgId).run();
		sent.length = 0;
		await deliverTenant([tenantEvent(t.orgId, "plan.changed", { plan: "free" })]);
		expect(await sentDeliveries(t.orgId, sent)).toHaveLength(0);
		expect(await deliveryRows(t.orgId)).toHaveLength(1);
	});

	it("a failing endpoint is retried on an exponential schedule, every attempt logged, until it gives up", async () => {
		const { t, ep, msg } = await oneDelivery(500);
		const delays: (number | undefined)[] = [];
		for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
			const r = await deliverTenant([msg!], { attempts: attempt });
			delays.push(r.delays[r.ids[0]!]);
		}
		expect(delays).toEqual([5, 20, 80, 320, 1280, 3600, 3600, undefined]);
		expect(receiver.state.received).toHaveLength(MAX_ATTEMPTS);
		const [log] = (await call<Deliveries>("GET", `${t.base}/${ep.id}/deliveries`, { token: t.token })).json.data;
		expect(log).toMatchObject({ status: "failed", attempts: MAX_ATTEMPTS, lastStatusCode: 500, lastError: "HTTP 500" });
	});

	it("an endpoint that keeps failing for a day is disabled automatically; manual replay after re-enabling succeeds", async () => {
		const t = await proTenant();
		const ep = await register(t, ["*"]);
		receiver.state.status = 503;
		const sent = captureTenantEvents(vi);
		for (let i = 0; i < DISABLE_AFTER_FAILURES + 1; i++) {
			await deliverTenant([tenantEvent(t.orgId, "plan.changed", { n: i })]);
		}
		const first = await sentDeliveries(t.orgId, sent);
		expect(first).toHaveLength(DISABLE_AFTER_FAILURES + 1);
		const beganBefore = Date.now();
		for (const m of first.slice(0, DISABLE_AFTER_FAILURES)) await deliverTenant([m]);
		// Ten failures in a row within moments (a receiver down for a minute): still enabled, the run's start shown.
		const failing = (await call<Endpoint>("GET", `${t.base}/${ep.id}`, { token: t.token })).json;
		expect(failing).toMatchObject({ status: "enabled", consecutiveFailures: DISABLE_AFTER_FAILURES, disabledReason: null });
		expect(failing.failingSince).toBeGreaterThanOrEqual(beganBefore);
		expect(failing.failingSince).toBeLessThanOrEqual(Date.now());
		// The run began a day ago (moved back in the store: no clock waits here): the next failure disables it.
		await storeSql(t.orgId, "UPDATE webhook_endpoints SET failing_since = failing_since - ? WHERE id = ?", DISABLE_AFTER_FAILING_MS, ep.id);
		await deliverTenant([first[DISABLE_AFTER_FAILURES]!]);
		const state = (await call<Endpoint>("GET", `${t.base}/${ep.id}`, { token: t.token })).json;
		expect(state).toMatchObject({ status: "disabled", consecutiveFailures: DISABLE_AFTER_FAILURES + 1, failingSince: failing.failingSince! - DISABLE_AFTER_FAILING_MS });
		expect(state.disabledReason).toMatch(/^disabled after 11 consecutive failed attempts over 24 hours \(last: HTTP 503\)$/);
		// A pending retry that meets the disabled endpoint fails for good, with no next attempt announced.
		await deliverTenant([first[0]!], { attempts: 2 });
		const gaveUp = (await call<Deliveries>("GET", `${t.base}/${ep.id}/deliveries?limit=100`, { token: t.token })).json.data.find(
			(d) => d.id === (first[0] as { deliveryId: string }).deliveryId,
		);
		expect(gaveUp).toMatchObject({ status: "failed", lastError: "endpoint disabled", nextAttemptAt: null });
		// An empty url is refused on PATCH as on POST, and changes nothing.
		const blank = await call("PATCH", `${t.base}/${ep.id}`, { token: t.token, body: { url: "" } });
		expect(blank.status, blank.text).toBe(400);
		// The store audits it in its own chain, once.
		const audited = await call<Body<"GET /api/orgs/:orgId/audit-logs">>("GET", `/api/orgs/${t.orgId}/audit-logs?action=webhook_endpoint.disabled`, {
			token: t.token,
		});
		expect(audited.json.data).toEqual([expect.objectContaining({ actor: { type: "system", id: null }, target: { type: "webhook_endpoint", id: ep.id } })]);
		// Disabled: new events are not fanned out to it.
		sent.length = 0;
		await deliverTenant([tenantEvent(t.orgId, "plan.changed", { n: "late" })]);
		expect(await sentDeliveries(t.orgId, sent)).toHaveLength(0);
		expect(await deliveryRows(t.orgId)).toHaveLength(DISABLE_AFTER_FAILURES + 1);

		const log = (await call<Deliveries>("GET", `${t.base}/${ep.id}/deliveries?limit=1`, { token: t.token })).json.data[0]!;
		expect((await call("POST", `${t.base}/${ep.id}/deliveries/${log.id}/replay`, { token: t.token })).status).toBe(409);
		expect((await call("PATCH", `${t.base}/${ep.id}`, { token: t.token, body: { status: "enabled" } })).json).toMatchObject({
			status: "enabled",
			consecutiveFailures: 0,
			failingSince: null,
		});
		receiver.state.status = 200;
		const replay = await call<Body<"POST /api/orgs/:orgId/webhooks/:endpointId/deliveries/:deliveryId/replay">>("POST", `${t.base}/${ep.id}/deliveries/${log.id}/replay`, { token: t.token });
		expect(replay.status, replay.text).toBe(202);
		const replayed = await sentDeliveries(t.orgId, sent);
		expect(replayed).toEqual([expect.objectContaining({ deliveryId: replay.json.deliveryId })]);
		await deliverTenant(replayed);
		const latest = (await call<Deliveries>("GET", `${t.base}/${ep.id}/deliveries?limit=1`, { token: t.token })).json.data[0];
		expect(latest).toMatchObject({ id: replay.json.deliveryId, eventId: log.eventId, status: "succeeded" });
		expect(receiver.state.received.at(-1)!.headers.get("webhook-id")).toBe(log.eventId);
	});
});

describe("one consumer batch, several tenants", () => {
	it("a tenant's slow endpoint holds back only its own deliveries, not another tenant's in the same batch", async () => {
		let release: () => void = () => {};
		const gate = new Promise<void>((r) => (release = r));
		const fast: string[] = [];
		stubNetwork(vi, {
			routes: {
				"https://hooks.tenant.example.com/slow": async () => {
					await gate;
					return new Response("ok");
				},
				"https://hooks.tenant.example.com/fast": async (req) => {
					fast.push(req.headers.get("webhook-id") ?? "");
					return new Response("ok");
				},
			},
		});
		const [a, b] = [await proTenant(), await proTenant()];
		for (const [t, path] of [
			[a, "slow"],
			[b, "fast"],
		] as const) {
			const res = await call("POST", t.base, { token: t.token, body: { url: `https://hooks.tenant.example.com/${path}`, eventTypes: ["*"] } });
			expect(res.status, res.text).toBe(201);
		}
		const sent = captureTenantEvents(vi);
		await deliverTenant([tenantEvent(a.orgId, "plan.changed", { plan: "pro" }), tenantEvent(b.orgId, "plan.changed", { plan: "pro" })]);
		const [toA] = await sentDeliveries(a.orgId, sent);
		const [toB] = await sentDeliveries(b.orgId, sent);
		const batch = deliverTenant([toA!, toB!]);
		try {
			expect(await eventually(async () => fast.length, (n) => n === 1, 3_000)).toBe(1);
		} finally {
			release();
		}
		expect((await batch).explicitAcks).toHaveLength(2);
	});
});

describe("delivery logs in the tenant's store", () => {
	it("an ended delivery's log is kept EVENT_RETENTION_DAYS, then the store's alarm deletes it; pending and retrying ones stay", async () => {
		const t = await proTenant();
		await register(t, ["*"]);
		const sent = captureTenantEvents(vi);
		for (let i = 0; i < 3; i++) await deliverTenant([tenantEvent(t.orgId, "plan.changed", { n: i })]);
		const [done, failing, waiting] = (await sentDeliveries(t.orgId, sent)) as [Events[number], Events[number], Events[number]];
		await deliverTenant([done]);
		receiver.state.status = 500;
		await deliverTenant([failing]);
		const id = (m: Events[number]) => (m as { deliveryId: string }).deliveryId;
		expect(await storeSql(t.orgId, "SELECT id, status FROM webhook_deliveries ORDER BY id")).toEqual(
			[
				{ id: id(done), status: "succeeded" },
				{ id: id(failing), status: "retrying" },
				{ id: id(waiting), status: "pending" },
			].sort((a, b) => (a.id < b.id ? -1 : 1)),
		);
		// The ended delivery set the alarm for when its log expires (an hour late, so one run prunes a batch), at
		// the latest.
		const [ended] = await storeSql<{ at: number }>(t.orgId, "SELECT updated_at AS at FROM webhook_deliveries WHERE id = ?", id(done));
		const alarm = await inStore(t.orgId, (_s, state) => state.storage.getAlarm());
		expect(alarm).not.toBeNull();
		expect(alarm!).toBeLessThanOrEqual(ended!.at + EVENT_RETENTION_DAYS * 86_400_000 + 3_600_000);
		// Its retention over (every row moved back: no clock waits here), the alarm deletes only what ended.
		await storeSql(t.orgId, "UPDATE webhook_deliveries SET updated_at = updated_at - ?", (EVENT_RETENTION_DAYS + 1) * 86_400_000);
		await runStoreAlarm(t.orgId);
		expect((await storeSql<{ id: string }>(t.orgId, "SELECT id FROM webhook_deliveries ORDER BY id")).map((r) => r.id)).toEqual([id(failing), id(waiting)].sort());
		const [counted] = await storeSql<{ value: number }>(t.orgId, "SELECT value FROM store_counters WHERE name = 'webhook_deliveries'");
		expect(counted?.value).toBe(2);
	});
});

describe("an endpoint's run of failures", () => {
	it("a delivery whose endpoint was deleted before its retry ends failed, not retrying for good", async () => {
		const { t, ep, msg } = await oneDelivery(500);
		await deliverTenant([msg!]);
		expect(await storeSql(t.orgId, "SELECT status FROM webhook_deliveries")).toEqual([{ status: "retrying" }]);
		expect((await call("DELETE", `${t.base}/${ep.id}`, { token: t.token })).status).toBe(204);
		const after = await deliverTenant([msg!], { attempts: 2 });
		expect(after.explicitAcks).toHaveLength(1);
		expect(await storeSql(t.orgId, "SELECT status, last_error AS lastError, next_attempt_at AS next FROM webhook_deliveries")).toEqual([
			{ status: "failed", lastError: "endpoint deleted", next: null },
		]);
		expect(receiver.state.received).toHaveLength(1);
	});

	it("starts at its first failure after a success, ends with a success, and a stale start left by older code is not used", async () => {
		const t = await proTenant();
		const ep = await register(t, ["*"]);
		const sent = captureTenantEvents(vi);
		for (let i = 0; i < 3; i++) await deliverTenant([tenantEvent(t.orgId, "plan.changed", { n: i })]);
		const [a, b, c] = (await sentDeliveries(t.orgId, sent)) as [Events[number], Events[number], Events[number]];
		const read = async () => (await call<Endpoint>("GET", `${t.base}/${ep.id}`, { token: t.token })).json;
		receiver.state.status = 500;
		const before = Date.now();
		await deliverTenant([a]);
		const started = (await read()).failingSince;
		expect(started).toBeGreaterThanOrEqual(before);
		await deliverTenant([b]);
		expect(await read()).toMatchObject({ consecutiveFailures: 2, failingSince: started });
		receiver.state.status = 200;
		await deliverTenant([c]);
		expect(await read()).toMatchObject({ status: "enabled", consecutiveFailures: 0, failingSince: null });
		// Code before the column reset only the count: a start found beside a count of 0 is not this run's.
		await storeSql(t.orgId, "UPDATE webhook_endpoints SET failing_since = ? WHERE id = ?", before - 7 * DISABLE_AFTER_FAILING_MS, ep.id);
		receiver.state.status = 500;
		const again = Date.now();
		await deliverTenant([a], { attempts: 2 });
		const after = await read();
		expect(after).toMatchObject({ status: "enabled", consecutiveFailures: 1 });
		expect(after.failingSince).toBeGreaterThanOrEqual(again);

		// Older code that succeeded (resetting only the count) and then failed again: a count above 0 beside a
		// start from before that success. At the threshold, the success is found: the run starts now, no disable.
		await storeSql(
			t.orgId,
			"UPDATE webhook_endpoints SET consecutive_failures = ?, failing_since = ? WHERE id = ?",
			DISABLE_AFTER_FAILURES - 1,
			before - 3 * DISABLE_AFTER_FAILING_MS,
			ep.id,
		);
		await storeSql(t.orgId, "UPDATE webhook_deliveries SET updated_at = ? WHERE id = ?", before - DISABLE_AFTER_FAILING_MS, (c as { deliveryId: string }).deliveryId);
		const atThreshold = Date.now();
		await deliverTenant([b], { attempts: 2 });
		const kept = await read();
		expect(kept).toMatchObject({ status: "enabled", consecutiveFailures: DISABLE_AFTER_FAILURES, disabledReason: null });
		expect(kept.failingSince).toBeGreaterThanOrEqual(atThreshold);
	});
});

describe("delivery-time destination checks", () => {
	/** Registers an endpoint for `url` (a name: accepted, checked when delivering) and delivers one event. */
	async function deliverTo(url: string, attempts = 1) {
		const t = await proTenant();
		const res = await call<Body<"POST /api/orgs/:orgId/webhooks">>("POST", t.base, {
			token: t.token,
			body: { url, eventTypes: ["*"] },
		});
		expect(res.status, res.text).toBe(201);
		const sent = captureTenantEvents(vi);
		await deliverTenant([tenantEvent(t.orgId, "plan.changed", { plan: "pro" })]);
		const [msg] = await sentDeliveries(t.orgId, sent);
		expect(msg).toBeDefined();
		const run = await deliverTenant([msg!], { attempts });
		const [log] = (await call<Deliveries>("GET", `${t.base}/${res.json.id}/deliveries`, { token: t.token })).json.data;
		return { run, log: log!, t, endpointId: res.json.id };
	}

	it.each([
		["https://localtest.me/hook", "127.0.0.1"],
		["http://127.0.0.1.nip.io/hook", "127.0.0.1"],
		["https://metadata.tenant-hooks.com/hook", "169.254.169.254"],
		["https://v6.tenant-hooks.com/hook", "fd00::1"],
	])("%s resolves (DNS-over-HTTPS) to %s: not sent, refusal logged, not retried", async (url, address) => {
		const hits: string[] = [];
		const record: Handler = (req) => {
			hits.push(req.url);
			return new Response("ok");
		};
		const spy = stubNetwork(vi, {
			routes: {
				...fakeDns({
					"localtest.me": "127.0.0.1",
					"127.0.0.1.nip.io": "127.0.0.1",
					"metadata.tenant-hooks.com": "169.254.169.254",
					"v6.tenant-hooks.com": "fd00::1",
				}),
				"https://localtest.me/": record,
				"http://127.0.0.1.nip.io/": record,
				"https://metadata.tenant-hooks.com/": record,
				"https://v6.tenant-hooks.com/": record,
			},
		});
		const { run, log } = await deliverTo(url);
		expect(hits).toEqual([]);
		// Resolved through 1.1.1.1's JSON API, A and AAAA.
		const dns = spy.mock.calls
			.map(([input, init]) => new Request(input as RequestInfo, init))
			.filter((r) => r.url.startsWith("https://cloudflare-dns.com/dns-query"));
		expect(dns.map((r) => new URL(r.url).searchParams.get("type")).sort()).toEqual(["A", "AAAA"]);
		expect(dns[0]!.headers.get("accept")).toBe("application/dns-json");
		expect(log).toMatchObject({ status: "failed", attempts: 1, lastStatusCode: null });
		expect(log.lastError).toContain(`resolves to ${address}`);
		// Final: acked, no retry scheduled.
		expect(run.delays[run.ids[0]!]).toBeUndefined();
		expect(run.explicitAcks).toHaveLength(1);
	});

	it("a resolver failure is an ordinary failed attempt (retried with backoff), never a send", async () => {
		const hits: string[] = [];
		stubNetwork(vi, {
			routes: {
				"https://cloudflare-dns.com/dns-query": () => new Response("unavailable", { status: 503 }),
				"https://hooks.tenant.example.com/": (req) => {
					hits.push(req.url);
					return new Response("ok");
				},
			},
		});
		const { run, log } = await deliverTo("https://hooks.tenant.example.com/in");
		expect(hits).toEqual([]);
		expect(log).toMatchObject({ status: "retrying", attempts: 1 });
		expect(log.lastError).toContain("could not resolve hooks.tenant.example.com");
		expect(run.delays[run.ids[0]!]).toBe(5);
	});

	it("a 3xx is a failed attempt: the redirect is not followed", async () => {
		const metadata: string[] = [];
		const modes: string[] = [];
		stubNetwork(vi, {
			routes: {
				"https://hooks.tenant.example.com/": (req) => {
					modes.push(req.redirect);
					return new Response(null, { status: 302, headers: { location: "http://169.254.169.254/latest/meta-data/" } });
				},
				"http://169.254.169.254/": (req) => {
					metadata.push(req.url);
					return new Response("secret");
				},
			},
		});
		const { run, log } = await deliverTo("https://hooks.tenant.example.com/in");
		expect(modes).toEqual(["manual"]);
		expect(metadata).toEqual([]);
		expect(log).toMatchObject({
			status: "retrying",
			attempts: 1,
			lastStatusCode: 302,
			lastError: "HTTP 302 (redirects are not followed)",
		});
		expect(run.delays[run.ids[0]!]).toBe(5);
	});
});
