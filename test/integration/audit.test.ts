import { env } from "cloudflare:workers";
import { describe, expect, it, type MockInstance, vi } from "vitest";
import type { TenantEvent } from "../../src/queue/tenant-events";
import { VERIFY_MAX_ENTRIES } from "../../src/services/audit";
import { systemAudit } from "../../src/services/events-bus";
import { envelope, membershipData } from "../helpers/clerk";
import { uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { deliver, messageFor } from "../helpers/queue";
import { type Body, call, callWithEnv, type Item } from "../helpers/request";
import { inStore, storeOf, storeSql } from "../helpers/store";
import { captureTenantEvents, deliverTenant } from "../helpers/tenant-queue";
import { seedTenant } from "../helpers/tenant";
import { TEST_OPERATOR } from "../helpers/vars";

type AuditList = Body<"GET /api/orgs/:orgId/audit-logs">;
type AuditEntry = Item<"GET /api/orgs/:orgId/audit-logs">;
type Verify = Body<"GET /api/orgs/:orgId/audit-logs/verify">;

describe("audit log", () => {
	it("every mutation is recorded off the hot path with who, what, when and where", async () => {
		const t = await seedTenant();
		const sent = captureTenantEvents(vi);
		const res = await call<Body<"POST /api/orgs/:orgId/products">>("POST", `/api/orgs/${t.orgId}/products`, {
			token: t.admin.token,
			headers: { "cf-connecting-ip": "203.0.113.9", "user-agent": "audit-test/1.0", "x-request-id": "req-audit-000001" },
			body: { name: "Audited", sku: uid("A"), priceMinor: 100, currency: "INR" },
		});
		expect(res.status).toBe(201);
		const patch = await call("PATCH", `/api/orgs/${t.orgId}/products/${res.json.id}`, {
			token: t.admin.token,
			body: { priceMinor: 250 },
		});
		expect(patch.status).toBe(200);
		// The tenant's store chains the entries itself, after each change's transaction: nothing is written
		// to D1 and nothing goes through the tenant-events queue.
		expect(await env.DB.prepare("SELECT count(*) AS n FROM audit_logs WHERE organization_id = ?").bind(t.orgId).first()).toEqual({
			n: 0,
		});
		expect(sent.filter((m) => m.organizationId === t.orgId)).toEqual([]);
		expect(await storeSql(t.orgId, "SELECT action FROM audit_logs ORDER BY seq")).toEqual([{ action: "product.created" }, { action: "product.updated" }]);
		const list = await call<AuditList>("GET", `/api/orgs/${t.orgId}/audit-logs`, { token: t.admin.token });
		expect(list.status, list.text).toBe(200);
		expect(list.json.data.map((e) => e.action)).toEqual(["product.updated", "product.created"]);
		const created = list.json.data[1];
		expect(created).toMatchObject({
			seq: 1,
			actor: { type: "user", id: t.admin.id },
			target: { type: "product", id: res.json.id },
			context: { ip: "203.0.113.9", userAgent: "audit-test/1.0", requestId: "req-audit-000001" },
		});
		expect(list.json.data[0]!.before).toMatchObject({ priceMinor: 100 });
		expect(list.json.data[0]!.after).toMatchObject({ priceMinor: 250 });
		expect(list.json.data[0]!.prevHash).toBe(created!.hash);
	});

	it("filters by actor, action and time, with a cursor", async () => {
		const t = await seedTenant();
		const base = 1_700_000_000_000;
		await deliverTenant([
			systemAudit({ organizationId: t.orgId, action: "a.one", occurredAt: base }),
			systemAudit({ organizationId: t.orgId, action: "a.two", occurredAt: base + 1000 }),
			{
				...systemAudit({ organizationId: t.orgId, action: "a.two", occurredAt: base + 2000 }),
				actorType: "user",
				actorId: t.member.id,
			},
		]);
		const q = (s: string) => call<AuditList>("GET", `/api/orgs/${t.orgId}/audit-logs?${s}`, { token: t.admin.token });
		expect((await q("action=a.two")).json.data).toHaveLength(2);
		expect((await q(`actor=${t.member.id}`)).json.data.map((e: AuditEntry) => e.action)).toEqual(["a.two"]);
		expect((await q("actor=system")).json.data).toHaveLength(2);
		expect((await q(`from=${base + 500}&to=${base + 1500}`)).json.data.map((e) => e.occurredAt)).toEqual([
			base + 1000,
		]);
		const p1 = await q("limit=2");
		const p2 = await q(`limit=2&cursor=${p1.json.nextCursor}`);
		expect([...p1.json.data, ...p2.json.data].map((e) => e.seq)).toEqual([3, 2, 1]);
		expect((await call("GET", `/api/orgs/${t.orgId}/audit-logs`, { token: t.member.token })).status).toBe(403);
	});

	it("the same event delivered twice is written once; the chain verifies", async () => {
		const t = await seedTenant();
		const entry = systemAudit({ organizationId: t.orgId, action: "dup.test" });
		await deliverTenant([entry, entry]);
		await deliverTenant([entry]);
		const verify = await call<Verify>("GET", `/api/orgs/${t.orgId}/audit-logs/verify`, { token: t.admin.token });
		expect(verify.status).toBe(200);
		expect(verify.json).toMatchObject({ intact: true, entries: 1, headSeq: 1 });
	});

	it("chain verification detects an altered row (and the API cannot alter or delete entries)", async () => {
		const t = await seedTenant();
		await deliverTenant(
			Array.from({ length: 5 }, (_, i) =>
				systemAudit({ organizationId: t.orgId, action: `step.${i}`, occurredAt: 1_700_000_000_000 + i }),
			),
		);
		expect((await call<Verify>("GET", `/api/orgs/${t.orgId}/audit-logs/verify`, { token: t.admin.token })).json).toMatchObject({
			intact: true,
			entries: 5,
		});
		// The table in the tenant's store itself refuses updates and deletes.
		await expect(storeSql(t.orgId, "UPDATE audit_logs SET action = 'x'")).rejects.toThrow(/append-only/);
		await expect(storeSql(t.orgId, "DELETE FROM audit_logs")).rejects.toThrow(/append-only/);
		expect(await storeSql(t.orgId, "SELECT count(*) AS n FROM audit_logs WHERE action LIKE 'step.%'")).toEqual([{ n: 5 }]);
		// Someone with access to the store's database drops the guard and rewrites entry 3.
		await storeSql(t.orgId, "DROP TRIGGER audit_logs_no_update");
		expect(await storeSql(t.orgId, "UPDATE audit_logs SET action = 'step.harmless' WHERE seq = 3 RETURNING seq")).toEqual([{ seq: 3 }]);
		const verify = async (q = "") =>
			(await call<Verify>("GET", `/api/orgs/${t.orgId}/audit-logs/verify${q}`, { token: t.admin.token })).json;
		// Entry 3 is before the checkpoint (5): a default call does not re-hash it…
		expect(await verify()).toMatchObject({ intact: true, entries: 0, checkedThrough: 5, nextCursor: null });
		// …a run from genesis does, and moves the checkpoint back to the last intact entry…
		expect(await verify("?full=1")).toMatchObject({
			intact: false,
			entries: 2,
			checkedThrough: 2,
			nextCursor: null,
			headSeq: 5,
			brokenAt: { seq: 3, reason: "hash mismatch" },
		});
		// …so every later call reports the break again.
		expect(await verify()).toMatchObject({ intact: false, entries: 0, checkedThrough: 2, brokenAt: { seq: 3 } });
	});

	it("verify is bounded per call: a long chain takes several calls along nextCursor, then resumes from the checkpoint", async () => {
		const t = await seedTenant();
		const store = storeOf(t.orgId);
		const entries = (n: number, from: number) =>
			Array.from({ length: n }, (_, i) =>
				systemAudit({ organizationId: t.orgId, action: `bulk.${from + i}`, occurredAt: 1_700_000_000_000 + from + i }),
			);
		const length = 2 * VERIFY_MAX_ENTRIES + 300;
		// Appended in the tenant's store, as the consumer does.
		await store.apply(entries(length, 0));

		// The statements of the store's database handle, and D1's.
		let storePrepare!: MockInstance;
		let storeBatch!: MockInstance;
		await inStore(t.orgId, (obj) => {
			storePrepare = vi.spyOn(obj.db.$client, "prepare");
			storeBatch = vi.spyOn(obj.db.$client, "batch");
		});
		const prepare = vi.spyOn(env.DB, "prepare");
		const batch = vi.spyOn(env.DB, "batch");
		const verify = async (q = "") => {
			for (const spy of [storePrepare, storeBatch, prepare, batch]) spy.mockClear();
			const rowsBefore = (await store.rowCounters()).rowsRead;
			const res = await callWithEnv({}, "GET", `/api/orgs/${t.orgId}/audit-logs/verify${q}`, { token: t.admin.token });
			expect(res.status, res.text).toBe(200);
			const rowsRead = (await store.rowCounters()).rowsRead - rowsBefore;
			// Bounded work per call whatever the chain length, all of it in the tenant's store: the verification's
			// own statements (checkpoint and head in one batch, at most 4 chunk reads, the checkpoint write) and
			// at most one slice of entries read, the checkpoint and head included.
			const audit = storePrepare.mock.calls.filter(([sql]) => /audit_(logs|checkpoints)/.test(String(sql)));
			expect(audit.length).toBeLessThanOrEqual(7);
			expect(storePrepare.mock.calls.length - audit.length).toBeLessThanOrEqual(2);
			expect(storeBatch.mock.calls.length).toBeLessThanOrEqual(1);
			expect(rowsRead).toBeLessThanOrEqual(VERIFY_MAX_ENTRIES + 10);
			// D1 only answers the request's fixed cost: the store route and the store's mirror of the caller's
			// access (organization, membership, permissions, seat), and the session-revocation list when due.
			expect(prepare.mock.calls.filter(([sql]) => /audit_(logs|checkpoints)/.test(sql))).toEqual([]);
			expect(prepare.mock.calls.length).toBeLessThanOrEqual(7);
			expect(batch.mock.calls.length).toBeLessThanOrEqual(3);
			return { ...(res.json as Verify), rowsRead };
		};
		const first = await verify();
		expect(first).toMatchObject({ intact: true, entries: VERIFY_MAX_ENTRIES, checkedThrough: VERIFY_MAX_ENTRIES, headSeq: length });
		expect(first.nextCursor).toEqual(expect.any(String));
		const reports = [first];
		while (reports.at(-1)!.nextCursor) reports.push(await verify(`?cursor=${reports.at(-1)!.nextCursor}`));
		expect(reports.length).toBe(3);
		expect(reports.every((r) => r.intact && r.entries <= VERIFY_MAX_ENTRIES)).toBe(true);
		expect(reports.at(-1)).toMatchObject({ checkedThrough: length, nextCursor: null });
		const head = reports.at(-1)!.headHash;
		expect(await storeSql(t.orgId, "SELECT hash FROM audit_logs WHERE seq = ?", length)).toEqual([{ hash: head }]);

		// The checkpoint is at the head: the next call re-hashes nothing (reads a few rows), and new entries only are checked.
		const resumed = await verify();
		expect(resumed).toMatchObject({ intact: true, entries: 0, checkedThrough: length, nextCursor: null });
		expect(resumed.rowsRead).toBeLessThan(10);
		await store.apply(entries(5, length));
		const next = await verify();
		expect(next).toMatchObject({ intact: true, entries: 5, checkedThrough: length + 5, headSeq: length + 5 });
		expect(next.rowsRead).toBeLessThan(20);
	});

	it("entries rewritten with recomputed hashes (consistent with each other) are reported by every later call: the checkpoint is the evidence and stays", async () => {
		const t = await seedTenant();
		const entries = (from: number, n: number, action: string) =>
			Array.from({ length: n }, (_, i) => systemAudit({ organizationId: t.orgId, action: `${action}.${from + i}`, occurredAt: 1_700_000_000_000 + from + i }));
		await deliverTenant(entries(1, 5, "real"));
		const verify = async (q = "") => (await call<Verify>("GET", `/api/orgs/${t.orgId}/audit-logs/verify${q}`, { token: t.admin.token })).json;
		expect(await verify()).toMatchObject({ intact: true, entries: 5, checkedThrough: 5 });
		// Someone with access to the store's database replaces entries 3..5 by a chain of their own, hashes and all.
		await storeSql(t.orgId, "DROP TRIGGER audit_logs_no_delete");
		await storeSql(t.orgId, "DELETE FROM audit_logs WHERE seq >= 3");
		await deliverTenant(entries(3, 3, "forged"));
		expect(await storeSql(t.orgId, "SELECT count(*) AS n FROM audit_logs WHERE action LIKE 'forged.%' AND seq BETWEEN 3 AND 5")).toEqual([{ n: 3 }]);
		for (let call = 0; call < 2; call++) {
			expect(await verify()).toMatchObject({ intact: false, brokenAt: { seq: 5, reason: "hash mismatch" } });
		}
		// A run from genesis finds the rewritten chain consistent up to the checkpoint's entry, which is not what was verified.
		expect(await verify("?full=1")).toMatchObject({ intact: false, entries: 4, brokenAt: { seq: 5, reason: "hash mismatch" } });
		expect(await verify()).toMatchObject({ intact: false, brokenAt: { seq: 5 } });
	});

	it("a cursor is the client's: one that does not match the chain, or a malformed one, answers 400 and anchors nothing", async () => {
		const t = await seedTenant();
		await deliverTenant(
			Array.from({ length: 5 }, (_, i) =>
				systemAudit({ organizationId: t.orgId, action: `c.${i}`, occurredAt: 1_700_000_000_000 + i }),
			),
		);
		const verify = (q: string) => call<Verify>("GET", `/api/orgs/${t.orgId}/audit-logs/verify${q}`, { token: t.admin.token });
		const forged = btoa(JSON.stringify([2, "f".repeat(64)])).replaceAll("=", "");
		const refused = await verify(`?cursor=${forged}`);
		expect(refused.status, refused.text).toBe(400);
		expect(refused.json).toMatchObject({ errors: [{ path: "cursor" }] });
		expect((await verify(`?cursor=${btoa(JSON.stringify([99, "f".repeat(64)])).replaceAll("=", "")}`)).status).toBe(400);
		expect((await verify("?cursor=not-a-cursor")).status).toBe(400);
		// No checkpoint came of it: the default call starts at genesis.
		expect((await verify("")).json).toMatchObject({ intact: true, entries: 5, checkedThrough: 5, nextCursor: null });
	});

	it("the OpenAPI document shows the verify cursor, full and the report's new fields", async () => {
		type Doc = {
			paths: Record<string, { get: { parameters: { name: string; in: string }[] } }>;
			components: { schemas: Record<string, { required?: string[] }> };
		};
		const doc = (await call<Doc>("GET", "/api/openapi.json")).json;
		const op = doc.paths["/api/orgs/{orgId}/audit-logs/verify"]!.get;
		expect(op.parameters.filter((p) => p.in === "query").map((p) => p.name)).toEqual(["cursor", "full"]);
		const report = doc.components.schemas.AuditChainReport!;
		const fields = ["intact", "entries", "headSeq", "headHash", "checkedThrough", "nextCursor"];
		expect(report.required).toEqual(expect.arrayContaining(fields));
	});

	it("membership changes from Clerk and order status changes are audited; there are no routes to change entries", async () => {
		const t = await seedTenant();
		const sent = captureTenantEvents(vi);
		const memId = uid("orgmem");
		const userId = uid("user");
		await deliver([
			messageFor(envelope("organizationMembership.created", membershipData(memId, t.orgId, userId, { role: "org:member" }))),
		]);
		await deliver([
			messageFor(
				envelope(
					"organizationMembership.updated",
					membershipData(memId, t.orgId, userId, { role: "org:admin", updatedAt: 1_700_000_500_000 }),
				),
			),
		]);
		expect(sent.filter((m) => m.kind === "audit").map((m) => (m.kind === "audit" ? m.action : ""))).toEqual([
			"membership.created",
			"membership.updated",
		]);
		expect(sent.filter((m) => m.kind === "webhook.event").map((m) => (m.kind === "webhook.event" ? m.type : ""))).toEqual([
			"membership.created",
			"membership.updated",
		]);
		for (const method of ["PATCH", "PUT", "DELETE"]) {
			// A known path with another method: 405 whose Allow lists only reads.
			const res = await call(method, `/api/orgs/${t.orgId}/audit-logs`, { token: t.admin.token });
			expect(res.status).toBe(405);
			expect(res.headers.get("allow")).toBe("GET, HEAD, OPTIONS");
		}
	});

	it("security events: rate-limit refusals and bursts of 403s are audited once per window", async () => {
		const t = await seedTenant({ limits: { rateLimitPerMinute: 2 } });
		const sent = captureTenantEvents(vi);
		const outsider = await signToken({ userId: uid("user") });
		for (let i = 0; i < 12; i++) {
			await call("GET", `/api/orgs/${t.orgId}/members`, {
				token: outsider,
				headers: { "cf-connecting-ip": "198.51.100.66" },
				settle: true,
			});
		}
		const bursts = sent.filter((m) => m.kind === "audit" && m.action === "security.forbidden_burst");
		expect(bursts).toHaveLength(1);
		expect(bursts[0]).toMatchObject({ organizationId: t.orgId, context: { ip: "198.51.100.66" } });

		const statuses = [];
		for (let i = 0; i < 5; i++)
			statuses.push(
				(await callWithEnv({ RATE_LIMIT_MODE: "strict" }, "GET", `/api/orgs/${t.orgId}`, { token: t.admin.token })).status,
			);
		// callWithEnv waits for the request's waitUntil work (the monitor's audit entry): no sleep.
		expect(statuses.filter((s) => s === 429)).toHaveLength(3);
		const refusals = sent.filter((m) => m.kind === "audit" && m.action === "rate_limit.exceeded");
		expect(refusals).toHaveLength(1);
		expect(refusals[0]).toMatchObject({ organizationId: t.orgId, actorId: t.admin.id, targetId: `org:${t.orgId}` });
	});

	it("a refusal by a member's own bucket names that bucket, once per bucket and window; a raised limit applies at once", async () => {
		const t = await seedTenant({ limits: { userRateLimitPerMinute: 2 } });
		const sent = captureTenantEvents(vi);
		const burst = async (token: string) => {
			const statuses: number[] = [];
			for (let i = 0; i < 3; i++) statuses.push((await callWithEnv({ RATE_LIMIT_MODE: "strict" }, "GET", t.base, { token })).status);
			return statuses;
		};
		expect(await burst(t.admin.token)).toEqual([200, 200, 429]);
		expect(await burst(t.member.token)).toEqual([200, 200, 429]);
		const refusals = sent.filter((m) => m.kind === "audit" && m.action === "rate_limit.exceeded");
		expect(refusals.map((m) => (m as { targetId: string }).targetId).sort()).toEqual(
			[`org:${t.orgId}:user:${t.admin.id}`, `org:${t.orgId}:user:${t.member.id}`].sort(),
		);
		expect(refusals[0]).toMatchObject({ after: { limit: 2, windowSeconds: 60 } });

		// The operator raises the per-user limit: the next request passes, with the new capacity.
		const operator = await signToken({ userId: TEST_OPERATOR });
		const raised = await call("PATCH", `/api/admin/orgs/${t.orgId}`, { token: operator, body: { userRateLimitPerMinute: 100 } });
		expect(raised.status, raised.text).toBe(200);
		const after = await callWithEnv({ RATE_LIMIT_MODE: "lease" }, "GET", t.base, { token: t.admin.token });
		expect(after.status, after.text).toBe(200);
		expect(after.headers.get("ratelimit-limit")).toBe("100");
		expect(Number(after.headers.get("ratelimit-remaining"))).toBeGreaterThanOrEqual(90);
	});
});

describe("outbox", () => {
	it("if the tenant-events queue refuses an entry made outside the store, it waits in the D1 outbox and the cron re-sends it into the store's chain", async () => {
		const t = await seedTenant();
		const down = vi.spyOn(env.TENANT_EVENTS, "sendBatch").mockRejectedValue(new Error("queue unavailable"));
		// API keys live in the directory (D1): their audit entries reach the store through the queue.
		const res = await call<Body<"POST /api/orgs/:orgId/api-keys">>("POST", `/api/orgs/${t.orgId}/api-keys`, {
			token: t.admin.token,
			body: { name: "ci", permissions: ["org:products:read"] },
		});
		expect(res.status, res.text).toBe(201);
		expect(down).toHaveBeenCalled();
		const parked = await env.DB.prepare("SELECT body FROM outbox WHERE organization_id = ?")
			.bind(t.orgId)
			.all<{ body: string }>();
		// The audit entry and the outgoing webhook event of the same name.
		const described = (m: TenantEvent) => (m.kind === "audit" ? `audit ${m.action}` : m.kind === "webhook.event" ? `event ${m.type}` : m.kind);
		expect(parked.results.map((r) => described(JSON.parse(r.body) as TenantEvent))).toEqual(["audit api_key.created", "event api_key.created"]);
		down.mockRestore();

		const sent = captureTenantEvents(vi);
		const { createExecutionContext, createScheduledController, waitOnExecutionContext } = await import("cloudflare:test");
		const worker = (await import("../../src/index")).default;
		const ctx = createExecutionContext();
		await worker.scheduled(createScheduledController({ cron: "* * * * *" }), env, ctx);
		await waitOnExecutionContext(ctx);
		const ours = sent.filter((m) => m.organizationId === t.orgId);
		expect(ours.map(described)).toEqual(["audit api_key.created", "event api_key.created"]);
		expect(await env.DB.prepare("SELECT count(*) AS n FROM outbox WHERE organization_id = ?").bind(t.orgId).first()).toEqual({
			n: 0,
		});
		// The consumer applies it in the tenant's store.
		expect((await deliverTenant(ours)).explicitAcks).toHaveLength(2);
		const list = await call<AuditList>("GET", `/api/orgs/${t.orgId}/audit-logs`, { token: t.admin.token });
		expect(list.json.data).toEqual([expect.objectContaining({ action: "api_key.created", target: { type: "api_key", id: res.json.id } })]);
	});
});
