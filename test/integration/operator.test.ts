import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { parkDeadLetters } from "../../src/services/outbox";
import { createDb } from "../../src/db/client";
import { systemAudit, tenantEvent } from "../../src/services/events-bus";
import { forgetStoreRoute } from "../../src/tenant-store/directory";
import { envelope, orgData } from "../helpers/clerk";
import { uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { DLQ, deliver, messageFor } from "../helpers/queue";
import { type Body, call, type Problem } from "../helpers/request";
import { captureTenantEvents, deliverTenant } from "../helpers/tenant-queue";
import { seedTenant } from "../helpers/tenant";
import { TEST_OPERATOR } from "../helpers/vars";
import { fakeReceiver, stubNetwork } from "../helpers/network";
import { drainStore, runStoreAlarm } from "../helpers/store";

type Health = Body<"GET /api/admin/health">;
type Events = Body<"GET /api/admin/events">;
type Org = Body<"GET /api/admin/orgs/:orgId">;
type AuditList = Body<"GET /api/orgs/:orgId/audit-logs">;

let operator: string;
beforeAll(async () => {
	operator = await signToken({ userId: TEST_OPERATOR, expiresIn: 3600 });
});

const queue = (h: Health, name: string) => h.queues.find((q) => q.queue === name)!;

/** A Clerk event for `orgId` that exhausted its retries: recorded failed (as the dead-letter consumer does). */
async function failedEvent(orgId: string) {
	const msg = messageFor(envelope("organization.updated", orgData(orgId, { updatedAt: 1 })));
	expect((await deliver([msg], { queue: DLQ, attempts: 6 })).explicitAcks).toHaveLength(1);
	return msg;
}

describe("operator API: access", () => {
	it("only operators: 401 without a token, 403 for anyone else (even an org admin), on every operator route", async () => {
		const t = await seedTenant();
		for (const [method, path, body] of [
			["GET", "/api/admin/health"],
			["GET", "/api/admin/events?outcome=failed"],
			["GET", `/api/admin/orgs/${t.orgId}`],
			["PATCH", `/api/admin/orgs/${t.orgId}`, { suspended: true }],
			["GET", `/api/admin/orgs/${t.orgId}/export`],
			["DELETE", `/api/admin/orgs/${t.orgId}`],
			["GET", "/api/admin/actions"],
		] as const) {
			expect((await call(method, path, { body })).status).toBe(401);
			const denied = await call<Problem>(method, path, { token: t.admin.token, body });
			expect(denied.status, `${method} ${path}`).toBe(403);
			expect(denied.json.detail).toBe("operator access required");
		}
		// Nothing changed.
		expect((await call<Org>("GET", `/api/admin/orgs/${t.orgId}`, { token: operator })).json).toMatchObject({ suspended: false, deletedAt: null });
	});

	it("the operator's own active session only: an impersonation of the operator (act) or a pending session is refused (403)", async () => {
		const t = await seedTenant();
		const impersonated = await signToken({ userId: TEST_OPERATOR, expiresIn: 3600, extra: { act: { sub: "user_support_agent" } } });
		const pending = await signToken({ userId: TEST_OPERATOR, expiresIn: 3600, sts: "pending" });
		// Any `act` is an impersonation, and any status but "active" is not an active session.
		const oddActor = await signToken({ userId: TEST_OPERATOR, expiresIn: 3600, extra: { act: {} } });
		const oddStatus = await signToken({ userId: TEST_OPERATOR, expiresIn: 3600, sts: "abandoned" });
		expect((await call("GET", "/api/admin/health", { token: await signToken({ userId: TEST_OPERATOR, expiresIn: 3600, sts: "active" }) })).status).toBe(200);
		for (const [token, detail] of [
			[impersonated, /impersonation/],
			[pending, /pending/],
			[oddActor, /impersonation/],
			[oddStatus, /abandoned/],
		] as const) {
			const denied = await call<Problem>("PATCH", `/api/admin/orgs/${t.orgId}`, { token, body: { suspended: true } });
			expect(denied.status, denied.text).toBe(403);
			expect(denied.json.detail).toMatch(detail);
			expect((await call("GET", "/api/admin/health", { token })).status).toBe(403);
		}
		// The operator's own session still is one; nothing was changed by the refused calls.
		const own = await call<Org>("GET", `/api/admin/orgs/${t.orgId}`, { token: operator });
		expect(own.status).toBe(200);
		expect(own.json).toMatchObject({ suspended: false });
	});
});

describe("GET /api/admin/health", () => {
	it("reports D1, queue backlogs and failures per queue, the oldest pending age and failing endpoints", async () => {
		const before = await call<Health>("GET", "/api/admin/health", { token: operator });
		expect(before.status, before.text).toBe(200);
		expect(before.json.d1.ok).toBe(true);
		expect(before.json.queues.map((q) => q.queue)).toEqual(["webhook-events", "tenant-events"]);

		const t = await seedTenant();
		// A tenant still served from the shared tables: its endpoints there count.
		await env.DB.prepare("UPDATE organizations SET store_state = 'd1' WHERE id = ?").bind(t.orgId).run();
		await failedEvent(t.orgId);
		const db = createDb(env.DB);
		// One tenant event dead-lettered for good, one waiting for the cron, 10 minutes old.
		await parkDeadLetters(db, [{ ...systemAudit({ organizationId: t.orgId, action: "x.failed" }), relays: 10 }]);
		const old = Date.now() - 10 * 60_000;
		await env.DB.prepare("INSERT INTO outbox (id, organization_id, body, created_at) VALUES (?, ?, ?, ?)")
			.bind(uid("aud"), t.orgId, JSON.stringify(systemAudit({ organizationId: t.orgId, action: "x.pending" })), old)
			.run();
		await env.DB.prepare(
			"INSERT INTO webhook_endpoints (id, organization_id, url, event_types, secret, status, consecutive_failures, created_at, updated_at) VALUES (?, ?, 'https://h.example/x', '[\"*\"]', 's', 'enabled', 3, 0, 0), (?, ?, 'https://h.example/y', '[\"*\"]', 's', 'disabled', 20, 0, 0)",
		)
			.bind(uid("we"), t.orgId, uid("we"), t.orgId)
			.run();

		const after = await call<Health>("GET", "/api/admin/health", { token: operator });
		expect(after.status, after.text).toBe(200);
		const [w0, w1] = [queue(before.json, "webhook-events"), queue(after.json, "webhook-events")];
		const [t0, t1] = [queue(before.json, "tenant-events"), queue(after.json, "tenant-events")];
		expect(w1.failed - w0.failed).toBe(1);
		expect(t1.failed - t0.failed).toBe(1);
		expect(t1.backlog - t0.backlog).toBe(1);
		expect(t1.oldestPendingAgeMs).toBeGreaterThanOrEqual(10 * 60_000);
		expect(after.json.outgoingEndpoints.failing - before.json.outgoingEndpoints.failing).toBe(1);
		expect(after.json.outgoingEndpoints.disabled - before.json.outgoingEndpoints.disabled).toBe(1);
		expect(after.json.status).toBe("degraded");

		// Moved to its own store: the rows left behind on the shared table no longer count (its store reports its own).
		await env.DB.prepare("UPDATE organizations SET store_state = 'store' WHERE id = ?").bind(t.orgId).run();
		const moved = await call<Health>("GET", "/api/admin/health", { token: operator });
		expect(moved.json.outgoingEndpoints).toEqual(before.json.outgoingEndpoints);
	});
});

describe("GET /api/admin/health: tenants served by their own store", () => {
	it("counts their outbox backlog and failures and their failing or disabled endpoints, as each store reports them", async () => {
		const receiver = fakeReceiver();
		stubNetwork(vi, { routes: receiver.routes });
		receiver.state.status = 503;
		const health = async () => {
			const res = await call<Health>("GET", "/api/admin/health", { token: operator });
			expect(res.status, res.text).toBe(200);
			const q = queue(res.json, "tenant-events");
			return { ...res.json.outgoingEndpoints, backlog: q.backlog, failed: q.failed, oldest: q.oldestPendingAgeMs };
		};
		const reported = (orgId: string) => env.DB.prepare("SELECT * FROM store_health WHERE organization_id = ?").bind(orgId).first();
		const t = await seedTenant({ plan: "pro" });
		const base = `${t.base}/webhooks`;
		// The backlog is a total: what other tenants of this file have pending (their relays may finish in the
		// background meanwhile) is read around each answer, so only this tenant's share is compared.
		const othersBacklog = async () =>
			(await env.DB.prepare(
				`SELECT (SELECT count(*) FROM outbox WHERE status = 'pending')
					+ (SELECT coalesce(sum(outbox_pending), 0) FROM store_health WHERE organization_id <> ?) AS n`,
			)
				.bind(t.orgId)
				.first<{ n: number }>())!.n;
		// Their backlog read before and after the answer: its share of the total lies between the two.
		const between = async <T>(read: () => Promise<T>) => {
			const a = await othersBacklog();
			const answer = await read();
			const b = await othersBacklog();
			return { ...answer, othersMin: Math.min(a, b), othersMax: Math.max(a, b) };
		};
		const ep = await call<Body<"POST /api/orgs/:orgId/webhooks">>("POST", base, {
			token: t.admin.token,
			body: { url: "https://hooks.tenant.example.com/in", eventTypes: ["*"] },
		});
		expect(ep.status, ep.text).toBe(201);
		const before = await health();

		// A failed delivery: the endpoint is failing.
		const sent = captureTenantEvents(vi);
		await deliverTenant([tenantEvent(t.orgId, "plan.changed", { plan: "pro" })]);
		await drainStore(t.orgId);
		const deliveries = sent.filter((m) => m.kind === "webhook.deliver" && m.organizationId === t.orgId);
		expect(deliveries).toHaveLength(1);
		await deliverTenant(deliveries);
		expect(await health()).toMatchObject({ failing: before.failing + 1, disabled: before.disabled });

		// The tenant-events queue refuses the store's relays: its outbox backlog shows, with its age.
		vi.spyOn(env.TENANT_EVENTS, "sendBatch").mockRejectedValue(new Error("queue unavailable"));
		await deliverTenant([tenantEvent(t.orgId, "plan.changed", { plan: "pro", n: 2 })]);
		await runStoreAlarm(t.orgId);
		const stuck = await between(health);
		expect(stuck.backlog - 1, "this tenant's one pending event, beside the others'").toBeGreaterThanOrEqual(stuck.othersMin);
		expect(stuck.backlog - 1).toBeLessThanOrEqual(stuck.othersMax);
		expect(stuck.oldest).not.toBeNull();

		// Disabled by its admin, then deleted: the figures follow.
		const off = await call("PATCH", `${base}/${ep.json.id}`, { token: t.admin.token, body: { status: "disabled" } });
		expect(off.status, off.text).toBe(200);
		expect(await health()).toMatchObject({ failing: before.failing, disabled: before.disabled + 1 });
		expect((await call("DELETE", `${base}/${ep.json.id}`, { token: t.admin.token })).status).toBe(204);
		expect(await health()).toMatchObject({ failing: before.failing, disabled: before.disabled });

		// The queue is back: the backlog drains, and a store with nothing to report has no row.
		captureTenantEvents(vi);
		await drainStore(t.orgId);
		const drained = await between(health);
		expect(drained.backlog, "none of this tenant's, beside the others'").toBeGreaterThanOrEqual(drained.othersMin);
		expect(drained.backlog).toBeLessThanOrEqual(drained.othersMax);
		expect(drained.failed).toBe(before.failed);
		expect(await reported(t.orgId)).toBeNull();
	});

	it("an offboarded tenant's report goes with its store", async () => {
		const t = await seedTenant({ plan: "pro" });
		await env.DB.prepare(
			"INSERT INTO store_health (organization_id, outbox_pending, outbox_oldest, outbox_failed, endpoints_failing, endpoints_disabled, reported_at) VALUES (?, 0, NULL, 1, 0, 1, 0)",
		)
			.bind(t.orgId)
			.run();
		// The store serves the tenant (and so knows its organization) before it reports anything.
		expect((await call("GET", `${t.base}/products`, { token: t.admin.token })).status).toBe(200);
		expect((await call("DELETE", `/api/admin/orgs/${t.orgId}`, { token: operator })).status).toBe(202);
		expect(await env.DB.prepare("SELECT 1 FROM store_health WHERE organization_id = ?").bind(t.orgId).first()).toBeNull();
	});
});

describe("GET /api/admin/events", () => {
	it("lists failed events across organizations, keyset-paginated, each replayable", async () => {
		const [a, b] = [await seedTenant(), await seedTenant()];
		const ours = [await failedEvent(a.orgId), await failedEvent(b.orgId), await failedEvent(a.orgId)].map((m) => m.svixId);
		const seen: Events["data"] = [];
		let cursor: string | null = "";
		for (let pages = 0; cursor !== null && pages < 100; pages++) {
			const res: Awaited<ReturnType<typeof call<Events>>> = await call<Events>(
				"GET",
				`/api/admin/events?outcome=failed&limit=2${cursor ? `&cursor=${cursor}` : ""}`,
				{ token: operator },
			);
			expect(res.status, res.text).toBe(200);
			expect(res.json.data.length).toBeLessThanOrEqual(2);
			seen.push(...res.json.data);
			cursor = res.json.nextCursor;
		}
		expect(seen.every((e) => e.outcome === "failed")).toBe(true);
		// Newest first, no row twice.
		expect(new Set(seen.map((e) => e.svixId)).size).toBe(seen.length);
		const received = seen.map((e) => e.receivedAt);
		expect(received).toEqual([...received].sort((x, y) => y - x));
		const mine = seen.filter((e) => ours.includes(e.svixId));
		expect(mine.map((e) => e.organizationId).sort()).toEqual([a.orgId, a.orgId, b.orgId].sort());
		expect(mine[0]).toMatchObject({ source: "clerk", type: "organization.updated", attempts: 6, error: "retries exhausted" });

		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send").mockResolvedValue(undefined as never);
		const replay = await call("POST", `/api/admin/events/${ours[1]}/replay`, { token: operator });
		expect(replay.status, replay.text).toBe(202);
		expect(send).toHaveBeenCalledTimes(1);
		const queued = await call<Events>("GET", "/api/admin/events?outcome=queued&limit=100", { token: operator });
		expect(queued.json.data.map((e) => e.svixId)).toContain(ours[1]);
		expect((await call("GET", "/api/admin/events?outcome=nope", { token: operator })).status).toBe(400);
	});
});

describe("GET/PATCH /api/admin/orgs/:orgId", () => {
	it("shows plan, overrides and effective limits; PATCH overrides them, takes effect at once, and is audited", async () => {
		const t = await seedTenant({ plan: "free" });
		const org = await call<Org>("GET", `/api/admin/orgs/${t.orgId}`, { token: operator });
		expect(org.status, org.text).toBe(200);
		expect(org.json).toMatchObject({
			id: t.orgId,
			plan: "free",
			dataRegion: "default",
			suspended: false,
			overrides: { rateLimitPerMinute: null, userRateLimitPerMinute: null, monthlyApiQuota: null, seatLimit: null },
			limits: { requestsPerMinute: 120, seats: 5 },
			hasData: false,
		});
		// Outgoing webhooks are not in the free plan (and that answer is now in this isolate's access cache).
		expect((await call("GET", `${t.base}/webhooks`, { token: t.admin.token })).status).toBe(402);

		const sent = captureTenantEvents(vi);
		const patch = await call<Org>("PATCH", `/api/admin/orgs/${t.orgId}`, {
			token: operator,
			body: { plan: "pro", rateLimitPerMinute: 50, userRateLimitPerMinute: 20, monthlyApiQuota: 777, seatLimit: 7 },
			settle: true,
		});
		expect(patch.status, patch.text).toBe(200);
		expect(patch.json).toMatchObject({
			plan: "pro",
			overrides: { rateLimitPerMinute: 50, userRateLimitPerMinute: 20, monthlyApiQuota: 777, seatLimit: 7 },
			limits: { requestsPerMinute: 50, userRequestsPerMinute: 20, monthlyApiQuota: 777, seats: 7 },
		});
		expect((await call<Org>("GET", `/api/admin/orgs/${t.orgId}`, { token: operator })).json).toEqual(patch.json);
		// Effective at once: the access cache was invalidated.
		expect((await call("GET", `${t.base}/webhooks`, { token: t.admin.token })).status).toBe(200);
		const usage = await call<Body<"GET /api/orgs/:orgId/usage">>("GET", `${t.base}/usage`, { token: t.admin.token });
		expect(usage.text).toContain("777");

		// A rate limit of 0 is refused (a bucket always lets one request a minute through: suspend to refuse all);
		// a quota or seat limit of 0 is what it says.
		for (const field of ["rateLimitPerMinute", "userRateLimitPerMinute"]) {
			const zero = await call<Problem>("PATCH", `/api/admin/orgs/${t.orgId}`, { token: operator, body: { [field]: 0 } });
			expect(zero.status, zero.text).toBe(400);
			expect(zero.json.errors?.[0]?.path).toBe(field);
		}
		expect((await call<Org>("GET", `/api/admin/orgs/${t.orgId}`, { token: operator })).json).toEqual(patch.json);

		// null resets an override to the plan's value.
		const reset = await call<Org>("PATCH", `/api/admin/orgs/${t.orgId}`, { token: operator, body: { rateLimitPerMinute: null }, settle: true });
		expect(reset.json).toMatchObject({ overrides: { rateLimitPerMinute: null }, limits: { requestsPerMinute: 1_200 } });

		// The plan change is announced (plan.changed, as Stripe's are); setting the plan it already has is not.
		const same = await call<Org>("PATCH", `/api/admin/orgs/${t.orgId}`, { token: operator, body: { plan: "pro" }, settle: true });
		expect(same.status, same.text).toBe(200);
		const ours = sent.filter((m) => m.organizationId === t.orgId);
		const events = ours.filter((m) => m.kind === "webhook.event");
		expect(events).toEqual([
			expect.objectContaining({
				type: "plan.changed",
				data: { organizationId: t.orgId, plan: "pro", previousPlan: "free", reason: "operator_override" },
			}),
		]);

		// Audited (written in the change's batch, relayed to the queue), with the operator as actor.
		expect(ours.filter((m) => m.kind === "audit")).toHaveLength(3);
		await deliverTenant(ours);
		const audit = await call<AuditList>("GET", `${t.base}/audit-logs`, { token: t.admin.token });
		expect(audit.json.data.map((e) => e.action)).toEqual(["organization.operator_updated", "organization.operator_updated", "organization.operator_updated"]);
		expect(audit.json.data[2]).toMatchObject({
			actor: { type: "user", id: TEST_OPERATOR },
			target: { type: "organization", id: t.orgId },
			before: { plan: "free", rateLimitPerMinute: null, seatLimit: null },
			after: { plan: "pro", rateLimitPerMinute: 50, seatLimit: 7 },
		});
	});

	it("billing's entitlements show the limits in effect, the overrides applied, as the operator view does", async () => {
		const t = await seedTenant({ plan: "pro" });
		const billing = () => call<Body<"GET /api/orgs/:orgId/billing">>("GET", `${t.base}/billing`, { token: t.admin.token });
		expect((await billing()).json.entitlements.limits).toMatchObject({ seats: 50, requestsPerMinute: 1_200 });
		const patch = await call<Org>("PATCH", `/api/admin/orgs/${t.orgId}`, {
			token: operator,
			body: { rateLimitPerMinute: 50, userRateLimitPerMinute: 20, monthlyApiQuota: 777, seatLimit: 2 },
			settle: true,
		});
		expect(patch.status, patch.text).toBe(200);
		const after = await billing();
		expect(after.status, after.text).toBe(200);
		expect(after.json.entitlements.limits).toEqual(patch.json.limits);
		expect(after.json.entitlements.limits).toEqual({ requestsPerMinute: 50, userRequestsPerMinute: 20, monthlyApiQuota: 777, seats: 2, apiKeys: 50 });
	});

	it("a suspended organization's routes answer 403 ORG_SUSPENDED at once; unsuspending restores them", async () => {
		const t = await seedTenant();
		const products = `${t.base}/products`;
		expect((await call("GET", products, { token: t.member.token })).status).toBe(200);
		const suspended = await call<Org>("PATCH", `/api/admin/orgs/${t.orgId}`, { token: operator, body: { suspended: true } });
		expect(suspended.status, suspended.text).toBe(200);
		expect(suspended.json).toMatchObject({ suspended: true, suspendedAt: expect.any(Number) });
		for (const [method, path] of [
			["GET", products],
			["GET", t.base],
			["POST", `${t.base}/categories`],
		] as const) {
			const res = await call<Problem>(method, path, { token: t.admin.token, body: method === "POST" ? { name: "n", slug: "n" } : undefined });
			expect(res.status, `${method} ${path}`).toBe(403);
			expect(res.json).toMatchObject({ code: "ORG_SUSPENDED", type: "https://errors.edge-tenant.dev/org-suspended", title: "Organization suspended" });
		}
		// Suspending again keeps the first time.
		const again = await call<Org>("PATCH", `/api/admin/orgs/${t.orgId}`, { token: operator, body: { suspended: true } });
		expect(again.json.suspendedAt).toBe(suspended.json.suspendedAt);
		const back = await call<Org>("PATCH", `/api/admin/orgs/${t.orgId}`, { token: operator, body: { suspended: false } });
		expect(back.json).toMatchObject({ suspended: false, suspendedAt: null });
		expect((await call("GET", products, { token: t.member.token })).status).toBe(200);
	});

	it("dataRegion is settable while the tenant has no data, 409 afterwards (and nothing else in that PATCH applies)", async () => {
		const t = await seedTenant();
		const eu = await call<Org>("PATCH", `/api/admin/orgs/${t.orgId}`, { token: operator, body: { dataRegion: "eu" } });
		expect(eu.status, eu.text).toBe(200);
		expect(eu.json).toMatchObject({ dataRegion: "eu", hasData: false });
		const product = await call("POST", `${t.base}/products`, {
			token: t.admin.token,
			body: { name: "P", sku: uid("P"), priceMinor: 1, currency: "INR" },
		});
		expect(product.status, product.text).toBe(201);
		const refused = await call<Problem>("PATCH", `/api/admin/orgs/${t.orgId}`, {
			token: operator,
			body: { dataRegion: "default", seatLimit: 99 },
		});
		expect(refused.status, refused.text).toBe(409);
		expect(refused.json.code).toBe("CONFLICT");
		expect((await call<Org>("GET", `/api/admin/orgs/${t.orgId}`, { token: operator })).json).toMatchObject({
			dataRegion: "eu",
			hasData: true,
			overrides: { seatLimit: null },
		});
		// The region it already has is not a change.
		expect((await call("PATCH", `/api/admin/orgs/${t.orgId}`, { token: operator, body: { dataRegion: "eu", seatLimit: 9 } })).status).toBe(200);
	});

	it("dataRegion: 409 once the tenant holds any record, even only an audit entry (an API key's included), on its store or the shared tables", async () => {
		// A membership's audit entry, applied in the store by the tenant-events consumer: the store's only record.
		const audited = await seedTenant();
		expect((await deliverTenant([systemAudit({ organizationId: audited.orgId, action: "membership.created" })])).explicitAcks).toHaveLength(1);
		// An API key: its row is the directory's; its audit entry (relayed, then applied) is the store's only record.
		const keyed = await seedTenant();
		const sent = captureTenantEvents(vi);
		const key = await call("POST", `${keyed.base}/api-keys`, { token: keyed.admin.token, body: { name: "ci", permissions: [] }, settle: true });
		expect(key.status, key.text).toBe(201);
		await deliverTenant(sent.filter((m) => m.organizationId === keyed.orgId));
		// A tenant not moved to its store yet: an audit entry in the shared tables.
		const shared = await seedTenant();
		await env.DB.prepare("UPDATE organizations SET store_state = 'd1' WHERE id = ?").bind(shared.orgId).run();
		forgetStoreRoute(shared.orgId);
		await deliverTenant([systemAudit({ organizationId: shared.orgId, action: "membership.created" })]);

		for (const [name, t] of Object.entries({ audited, keyed, shared })) {
			const path = `/api/admin/orgs/${t.orgId}`;
			expect((await call<Org>("GET", path, { token: operator })).json.hasData, name).toBe(true);
			const refused = await call<Problem>("PATCH", path, { token: operator, body: { dataRegion: "eu" } });
			expect(refused.status, `${name}: ${refused.text}`).toBe(409);
			expect((await call<Org>("GET", path, { token: operator })).json.dataRegion, name).toBe("default");
		}
	});

	it("validates: unknown fields and bad values 400, unknown organization 404", async () => {
		const t = await seedTenant();
		const path = `/api/admin/orgs/${t.orgId}`;
		for (const body of [{ suspended: "yes" }, { plan: "platinum" }, { dataRegion: "us" }, { seatLimit: -1 }, { nope: 1 }]) {
			expect((await call("PATCH", path, { token: operator, body })).status, JSON.stringify(body)).toBe(400);
		}
		expect((await call("GET", "/api/admin/orgs/org_missing", { token: operator })).status).toBe(404);
		expect((await call("PATCH", "/api/admin/orgs/org_missing", { token: operator, body: { suspended: true } })).status).toBe(404);
	});

	it("the OpenAPI document has the operator routes", async () => {
		const doc = await call<{ paths: Record<string, Record<string, unknown>> }>("GET", "/api/openapi.json");
		expect(Object.keys(doc.json.paths["/api/admin/health"]!)).toEqual(["get"]);
		expect(Object.keys(doc.json.paths["/api/admin/events"]!)).toEqual(["get"]);
		expect(Object.keys(doc.json.paths["/api/admin/orgs/{orgId}"]!).sort()).toEqual(["delete", "get", "patch"]);
		expect(Object.keys(doc.json.paths["/api/admin/orgs/{orgId}/export"]!)).toEqual(["get"]);
		expect(Object.keys(doc.json.paths["/api/admin/actions"]!)).toEqual(["get"]);
	});
});

describe("GET /api/admin/actions", () => {
	type Actions = Body<"GET /api/admin/actions">;
	const actionsOf = async (orgId: string) => {
		const res = await call<Actions>("GET", `/api/admin/actions?organizationId=${orgId}&limit=100`, { token: operator });
		expect(res.status, res.text).toBe(200);
		return res.json.data;
	};

	it("records each operator change, export and replay once it succeeded: who, what, which tenant, what was asked, the request id; newest first", async () => {
		const t = await seedTenant();
		const other = await seedTenant();
		const path = `/api/admin/orgs/${t.orgId}`;
		// Reads and refusals record nothing.
		expect((await call("GET", path, { token: operator })).status).toBe(200);
		expect((await call("GET", "/api/admin/health", { token: operator })).status).toBe(200);
		expect((await call("PATCH", path, { token: operator, body: { plan: "platinum" } })).status).toBe(400);
		expect((await call("PATCH", path, { token: t.admin.token, body: { suspended: true } })).status).toBe(403);
		expect(await actionsOf(t.orgId)).toEqual([]);

		const patched = await call("PATCH", path, { token: operator, body: { suspended: true, seatLimit: 9 }, headers: { "x-request-id": "req-operator-patch-1" }, settle: true });
		expect(patched.status, patched.text).toBe(200);
		const exported = await call("GET", `${path}/export`, { token: operator });
		expect(exported.status).toBe(200);
		const failed = await failedEvent(t.orgId);
		// A replay the queue refuses (503) may be partly done: recorded with its status.
		const refused = vi.spyOn(env.WEBHOOK_QUEUE, "send").mockRejectedValue(new Error("queue unavailable"));
		expect((await call("POST", `/api/admin/events/${failed.svixId}/replay`, { token: operator })).status).toBe(503);
		refused.mockResolvedValue(undefined as never);
		expect((await call("POST", `/api/admin/events/${failed.svixId}/replay`, { token: operator })).status).toBe(202);
		expect((await call("POST", "/api/admin/events/evt_unknown/replay", { token: operator })).status).toBe(404);
		expect((await call("DELETE", path, { token: operator })).status).toBe(202);
		expect((await call("PATCH", `/api/admin/orgs/${other.orgId}`, { token: operator, body: { suspended: true }, settle: true })).status).toBe(200);

		const mine = await actionsOf(t.orgId);
		expect(mine.map((a) => [a.action, a.status])).toEqual([
			["org.deleted", 202],
			["event.replayed", 202],
			["event.replayed", 503],
			["org.exported", 200],
			["org.updated", 200],
		]);
		expect(mine.every((a) => a.operatorId === TEST_OPERATOR && a.organizationId === t.orgId && /^opa_/.test(a.id))).toBe(true);
		expect(mine[4]).toMatchObject({ detail: { suspended: true, seatLimit: 9 }, status: 200, requestId: "req-operator-patch-1", targetId: null });
		expect(mine[1]).toMatchObject({ targetId: failed.svixId, status: 202, detail: null });
		expect(mine[0]).toMatchObject({ status: 202, detail: null });
		const at = mine.map((a) => a.at);
		expect(at).toEqual([...at].sort((x, y) => y - x));
		expect((await actionsOf(other.orgId)).map((a) => a.action)).toEqual(["org.updated"]);

		// Every tenant's, newest first, keyset-paginated.
		const seen: Actions["data"] = [];
		let cursor: string | null = "";
		for (let pages = 0; cursor !== null && pages < 200; pages++) {
			const res: Awaited<ReturnType<typeof call<Actions>>> = await call<Actions>("GET", `/api/admin/actions?limit=2${cursor ? `&cursor=${cursor}` : ""}`, {
				token: operator,
			});
			expect(res.status, res.text).toBe(200);
			seen.push(...res.json.data);
			cursor = res.json.nextCursor;
		}
		expect(new Set(seen.map((a) => a.id)).size).toBe(seen.length);
		expect(seen.filter((a) => a.organizationId === t.orgId || a.organizationId === other.orgId)).toHaveLength(6);
		expect((await call("GET", "/api/admin/actions?cursor=%%%", { token: operator })).status).toBe(400);
	});
});
