import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { createDb } from "../../src/db/client";
import { appendAudit, VERIFY_MAX_ENTRIES } from "../../src/services/audit";
import { systemAudit } from "../../src/services/events-bus";
import { envelope, membershipData } from "../helpers/clerk";
import { uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { deliver, messageFor } from "../helpers/queue";
import { type Body, call, callWithEnv, type Item } from "../helpers/request";
import { captureTenantEvents, deliverTenant } from "../helpers/tenant-queue";
import { seedTenant } from "../helpers/tenant";

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
		// Nothing was written to D1 by the requests themselves…
		expect(await env.DB.prepare("SELECT count(*) AS n FROM audit_logs WHERE organization_id = ?").bind(t.orgId).first()).toEqual({
			n: 0,
		});
		// …the consumer writes the entries.
		const result = await deliverTenant(sent);
		expect(result.explicitAcks).toHaveLength(sent.length);
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
		// The table itself refuses updates and deletes.
		await expect(
			env.DB.prepare("UPDATE audit_logs SET action = 'x' WHERE organization_id = ?").bind(t.orgId).run(),
		).rejects.toThrow(/append-only/);
		await expect(env.DB.prepare("DELETE FROM audit_logs WHERE organization_id = ?").bind(t.orgId).run()).rejects.toThrow(
			/append-only/,
		);
		// Someone with database access drops the guard and rewrites entry 3.
		await env.DB.exec("DROP TRIGGER audit_logs_no_update");
		try {
			await env.DB.prepare("UPDATE audit_logs SET action = 'step.harmless' WHERE organization_id = ? AND seq = 3")
				.bind(t.orgId)
				.run();
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
		} finally {
			await env.DB.exec(
				"CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only'); END;",
			);
		}
	});

	it("verify is bounded per call: a long chain takes several calls along nextCursor, then resumes from the checkpoint", async () => {
		const t = await seedTenant();
		const db = createDb(env.DB);
		const entries = (n: number, from: number) =>
			Array.from({ length: n }, (_, i) =>
				systemAudit({ organizationId: t.orgId, action: `bulk.${from + i}`, occurredAt: 1_700_000_000_000 + from + i }),
			);
		const length = 2 * VERIFY_MAX_ENTRIES + 300;
		expect(await appendAudit(db, entries(length, 0))).toEqual(new Set());

		const prepare = vi.spyOn(env.DB, "prepare");
		const batch = vi.spyOn(env.DB, "batch");
		const verify = async (q = "") => {
			prepare.mockClear();
			batch.mockClear();
			const res = await callWithEnv({}, "GET", `/api/orgs/${t.orgId}/audit-logs/verify${q}`, { token: t.admin.token });
			expect(res.status, res.text).toBe(200);
			// Bounded D1 work per call whatever the chain length: the verification's own statements (checkpoint
			// and head in one batch, at most 4 chunk reads, the checkpoint write), besides the tenant lookups.
			const audit = prepare.mock.calls.filter(([q]) => /audit_(logs|checkpoints)/.test(q));
			expect(audit.length).toBeLessThanOrEqual(7);
			// The rest is the request's fixed cost, whatever the chain length: the access lookup (3), the seat
			// check (1) and, when its refresh is due, the session-revocation list (2).
			expect(prepare.mock.calls.length - audit.length).toBeLessThanOrEqual(6);
			// Batches: the access lookup, the verification's checkpoint and head, the revocation refresh when due.
			expect(batch.mock.calls.length).toBeLessThanOrEqual(3);
			return res.json as Verify;
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
		const { results } = await env.DB.prepare("SELECT hash FROM audit_logs WHERE organization_id = ? AND seq = ?")
			.bind(t.orgId, length)
			.all<{ hash: string }>();
		expect(head).toBe(results[0]!.hash);

		// The checkpoint is at the head: the next call re-hashes nothing, and new entries only are checked.
		expect(await verify()).toMatchObject({ intact: true, entries: 0, checkedThrough: length, nextCursor: null });
		expect(await appendAudit(db, entries(5, length))).toEqual(new Set());
		expect(await verify()).toMatchObject({ intact: true, entries: 5, checkedThrough: length + 5, headSeq: length + 5 });
	});

	it("a cursor is the client's: a forged one is reported, anchors nothing, and a malformed one answers 400", async () => {
		const t = await seedTenant();
		await deliverTenant(
			Array.from({ length: 5 }, (_, i) =>
				systemAudit({ organizationId: t.orgId, action: `c.${i}`, occurredAt: 1_700_000_000_000 + i }),
			),
		);
		const verify = (q: string) => call<Verify>("GET", `/api/orgs/${t.orgId}/audit-logs/verify${q}`, { token: t.admin.token });
		const forged = btoa(JSON.stringify([2, "f".repeat(64)])).replaceAll("=", "");
		expect((await verify(`?cursor=${forged}`)).json).toMatchObject({
			intact: false,
			brokenAt: { seq: 2, reason: "hash mismatch" },
		});
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
});

describe("outbox", () => {
	it("if the tenant-events queue refuses, entries wait in the D1 outbox and the cron re-sends them", async () => {
		const t = await seedTenant();
		const down = vi.spyOn(env.TENANT_EVENTS, "sendBatch").mockRejectedValue(new Error("queue unavailable"));
		const res = await call("POST", `/api/orgs/${t.orgId}/categories`, {
			token: t.admin.token,
			body: { name: "Kept", slug: uid("kept").toLowerCase().replace(/_/g, "-") },
		});
		expect(res.status, res.text).toBe(201);
		const parked = await env.DB.prepare("SELECT body FROM outbox WHERE organization_id = ?")
			.bind(t.orgId)
			.all<{ body: string }>();
		expect(parked.results.map((r) => JSON.parse(r.body).action)).toEqual(["category.created"]);
		down.mockRestore();

		const sent = captureTenantEvents(vi);
		const { createExecutionContext, createScheduledController, waitOnExecutionContext } = await import("cloudflare:test");
		const worker = (await import("../../src/index")).default;
		const ctx = createExecutionContext();
		await worker.scheduled(createScheduledController({ cron: "* * * * *" }), env, ctx);
		await waitOnExecutionContext(ctx);
		expect(
			sent.filter((m) => m.kind === "audit" && m.organizationId === t.orgId).map((m) => (m.kind === "audit" ? m.action : "")),
		).toEqual(["category.created"]);
		expect(await env.DB.prepare("SELECT count(*) AS n FROM outbox WHERE organization_id = ?").bind(t.orgId).first()).toEqual({
			n: 0,
		});
	});
});
