import { describe, expect, it, vi } from "vitest";
import { createApp } from "../../src/app";
import { createClient, DECLARED_HEADERS } from "../../src/client";
import { ProblemSchema } from "../../src/openapi";
import { AuditEntrySchema } from "../../src/routes/audit/audit.routes";
import { BillingSchema } from "../../src/routes/billing/billing.routes";
import { MeResponse } from "../../src/routes/me/me.routes";
import { EventSchema, MemberSchema, OrganizationSchema } from "../../src/routes/orgs/orgs.routes";
import { ProductSchema } from "../../src/routes/store/store.routes";
import { UsageSchema } from "../../src/routes/usage/usage.routes";
import { signToken } from "../helpers/jwt";
import { callWithEnv, fetchWorker, fetchWorkerWithEnv, get } from "../helpers/request";
import { seedTenant } from "../helpers/tenant";

/** The parts of the OpenAPI document these tests read. */
interface OpenApiDoc {
	openapi: string;
	paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
}

const toOpenApiPath = (p: string) => p.replace(/:([A-Za-z]+)/g, "{$1}");

describe("OpenAPI document", () => {
	it("is served at /api/openapi.json and documents every mounted route", async () => {
		const res = await get<OpenApiDoc>("/api/openapi.json");
		expect(res.status).toBe(200);
		expect(res.json.openapi).toBe("3.1.0");
		const documented = new Set<string>();
		for (const [path, ops] of Object.entries(res.json.paths)) {
			for (const method of Object.keys(ops)) documented.add(`${method.toUpperCase()} ${path}`);
		}
		const mounted = createApp()
			.routes.filter((r) => r.method !== "ALL" && r.path.startsWith("/api/") && r.path !== "/api/openapi.json")
			.map((r) => `${r.method} ${toOpenApiPath(r.path)}`);
		expect(mounted.length).toBeGreaterThanOrEqual(9);
		for (const route of new Set(mounted)) expect(documented, `${route} is not documented`).toContain(route);
		// Every operation documents its problem responses.
		for (const ops of Object.values(res.json.paths)) {
			for (const op of Object.values(ops)) expect(Object.keys(op.responses)).toContain("500");
		}
	});

	it("the docs page loads the document", async () => {
		const res = await get("/docs");
		expect(res.status).toBe(200);
		expect(res.headers.get("content-type")).toContain("text/html");
		expect(res.text).toContain("/api/openapi.json");
	});

	it("real responses match the documented schemas for a sample of calls", async () => {
		const t = await seedTenant();
		const admin = await signToken({ userId: t.admin.id, orgId: t.orgId, role: "org:admin" });
		const cases = [
			{ path: "/api/me", schema: MeResponse, token: admin, status: 200 },
			{ path: `/api/orgs/${t.orgId}`, schema: OrganizationSchema, token: admin, status: 200 },
			{ path: `/api/orgs/${t.orgId}/members`, schema: MemberSchema.array(), pick: "data", token: admin, status: 200 },
			{ path: `/api/orgs/${t.orgId}/events`, schema: EventSchema.array(), pick: "data", token: admin, status: 200 },
			{ path: `/api/orgs/${t.orgId}/products`, schema: ProductSchema.array(), pick: "data", token: admin, status: 200 },
			{ path: `/api/orgs/${t.orgId}/billing`, schema: BillingSchema, token: admin, status: 200 },
			{ path: `/api/orgs/${t.orgId}/usage`, schema: UsageSchema, token: admin, status: 200 },
			{ path: `/api/orgs/${t.orgId}/audit-logs`, schema: AuditEntrySchema.array(), pick: "data", token: admin, status: 200 },
			{ path: `/api/orgs/${t.orgId}/webhooks`, schema: ProblemSchema, token: admin, status: 402 },
			{ path: "/api/orgs/org_missing", schema: ProblemSchema, token: admin, status: 404 },
			{ path: "/api/me", schema: ProblemSchema, status: 401 },
		];
		const doc = (await get<OpenApiDoc>("/api/openapi.json")).json;
		for (const c of cases) {
			const res = await get<Record<string, unknown>>(c.path, c.token);
			expect(res.status, `${c.path}: ${res.text}`).toBe(c.status);
			const body = c.pick ? res.json[c.pick] : res.json;
			const parsed = c.schema.safeParse(body);
			expect(parsed.success, `${c.path}: ${JSON.stringify(parsed.error?.issues)}`).toBe(true);
			const templ = toOpenApiPath(c.path.replace(t.orgId, ":orgId").replace("org_missing", ":orgId"));
			expect(doc.paths[templ], `${templ} is not in the document`).toBeDefined();
			expect(Object.keys(doc.paths[templ]!.get!.responses)).toContain(String(c.status));
		}
	});

	it("the typed hono client works against the Worker", async () => {
		const t = await seedTenant();
		const token = t.member.token;
		const api = createClient("https://api.test", async () => token, fetchWorker);
		const health = await api.api.health.$get();
		expect(await health.json()).toMatchObject({ status: "ok" });
		const members = await api.api.orgs[":orgId"].members.$get({ param: { orgId: t.orgId }, query: { limit: "1" } });
		expect(members.status).toBe(200);
		if (members.status === 200) {
			const body = await members.json();
			expect(body.data).toHaveLength(1);
			expect(body.nextCursor).toEqual(expect.any(String));
		}
		expect(members.typedHeaders["X-Request-Id"]).toBe(members.headers.get("x-request-id"));
	});

	it("the client reads the declared headers as typed values: RateLimit-* as numbers, Location of a created resource", async () => {
		const t = await seedTenant();
		const api = createClient("https://api.test", async () => t.admin.token, fetchWorkerWithEnv({ RATE_LIMIT_MODE: "strict" }));
		const created = await api.api.orgs[":orgId"].categories.$post({ param: { orgId: t.orgId }, header: {}, json: { name: "Tea", slug: "tea" } });
		expect(created.status).toBe(201);
		const { typedHeaders: h } = created;
		expect(h["RateLimit-Limit"]).toEqual(Number(created.headers.get("ratelimit-limit")));
		expect(h["RateLimit-Remaining"]).toEqual(Number(created.headers.get("ratelimit-remaining")));
		expect(h["RateLimit-Reset"]).toEqual(Number(created.headers.get("ratelimit-reset")));
		for (const n of [h["RateLimit-Limit"], h["RateLimit-Remaining"], h["RateLimit-Reset"]]) expect(n).toEqual(expect.any(Number));
		if (created.status === 201) {
			const { id } = await created.json();
			expect(h.Location).toBe(`/api/orgs/${t.orgId}/categories/${id}`);
		}
		// Exactly the declared headers that were sent: a read has no Location, and nothing undeclared is read.
		const list = await api.api.orgs[":orgId"].categories.$get({ param: { orgId: t.orgId }, query: {} });
		expect(list.status).toBe(200);
		const sent = Object.keys(DECLARED_HEADERS).filter((name) => list.headers.get(name) !== null);
		expect(sent).toEqual(expect.arrayContaining(["X-Request-Id", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"]));
		expect(Object.keys(list.typedHeaders).sort()).toEqual(sent.sort());
		expect(list.typedHeaders.Location).toBeUndefined();
		expect(list.typedHeaders["X-Request-Id"]).toBe(list.headers.get("x-request-id"));
	});
});

describe("observability", () => {
	it("logs one JSON line per request with request id, tenant, user, route, status and duration", async () => {
		const t = await seedTenant();
		const lines: string[] = [];
		vi.spyOn(console, "log").mockImplementation((line: unknown) => {
			lines.push(String(line));
		});
		const res = await callWithEnv({ LOG_LEVEL: "info" }, "GET", `/api/orgs/${t.orgId}/members`, {
			token: t.admin.token,
			headers: { "x-request-id": "req-observe-1" },
		});
		expect(res.status).toBe(200);
		expect(res.headers.get("x-request-id")).toBe("req-observe-1");
		const entry = lines.map((l) => JSON.parse(l)).find((e) => e.msg === "request");
		expect(entry).toMatchObject({
			level: "info",
			requestId: "req-observe-1",
			orgId: t.orgId,
			userId: t.admin.id,
			route: "/api/orgs/:orgId/members",
			status: 200,
			method: "GET",
		});
		expect(entry.durationMs).toEqual(expect.any(Number));
	});
});
