import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { recordRequest } from "../../src/lib/metrics";
import { parseTraceparent } from "../../src/lib/trace";
import type { WebhookMessage } from "../../src/queue/messages";
import { envelope, svixHeaders, userData } from "../helpers/clerk";
import { seedOrg, uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { deliver, messageFor, QUEUE, runQueue } from "../helpers/queue";
import { type Body, call, callWithEnv, type Problem, type TestResponse } from "../helpers/request";
import { seedTenant } from "../helpers/tenant";
import { TEST_OPERATOR } from "../helpers/vars";

afterEach(() => {
	vi.restoreAllMocks();
});

/** A stand-in for the Analytics Engine dataset (the local one drops writes): what the Worker wrote. */
function metricsRecorder() {
	const points: AnalyticsEngineDataPoint[] = [];
	const METRICS: AnalyticsEngineDataset = { writeDataPoint: (p) => void points.push(p ?? {}) };
	return { points, METRICS };
}

/** The JSON lines the Worker logs (console.log/warn/error), parsed. */
function captureLogs(): Record<string, unknown>[] {
	const lines: Record<string, unknown>[] = [];
	const keep = (line: unknown) => {
		try {
			lines.push(JSON.parse(String(line)) as Record<string, unknown>);
		} catch {
			// not one of ours
		}
	};
	for (const level of ["log", "warn", "error"] as const) vi.spyOn(console, level).mockImplementation(keep);
	return lines;
}

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID = "00f067aa0ba902b7";
const traceparent = (flags = "01") => `00-${TRACE_ID}-${PARENT_ID}-${flags}`;

/** The response's traceparent, checked well formed: its trace id and span id. */
function answered(res: TestResponse): { traceId: string; spanId: string; sampled: boolean } {
	const header = res.headers.get("traceparent");
	expect(header, res.text).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
	const parsed = parseTraceparent(header)!;
	return { traceId: parsed.traceId, spanId: parsed.parentId, sampled: parsed.sampled };
}

describe("metrics: one Analytics Engine data point per request", () => {
	it("a tenant-store write: organization, route pattern, status class, latency, auth kind and trace id", async () => {
		const t = await seedTenant();
		const { points, METRICS } = metricsRecorder();
		const res = await callWithEnv({ METRICS }, "POST", `${t.base}/products`, {
			token: t.admin.token,
			body: { name: "Chai", sku: uid("SKU"), priceMinor: 25000, currency: "INR" },
		});
		expect(res.status, res.text).toBe(201);
		// Once, by the Worker: the store that served the write does not count it again.
		expect(points).toEqual([
			{
				indexes: [t.orgId],
				blobs: ["request", t.orgId, "/api/orgs/:orgId/products", "POST", "2xx", "session", answered(res).traceId],
				doubles: [expect.any(Number), 201],
			},
		]);
		expect(points[0]!.doubles![0]).toBeGreaterThanOrEqual(0);
	});

	it("refusals and unknown paths: no principal, 4xx, the route pattern or (none)", async () => {
		const { points, METRICS } = metricsRecorder();
		const refused = await callWithEnv({ METRICS }, "GET", "/api/me");
		expect(refused.status).toBe(401);
		const unknown = await callWithEnv({ METRICS }, "GET", "/api/nope");
		expect(unknown.status).toBe(404);
		const t = await seedTenant();
		const forbidden = await callWithEnv({ METRICS }, "GET", `${t.base}/admin-data`, { token: t.member.token });
		expect(forbidden.status).toBe(403);
		expect(points.map((p) => [p.indexes, ...(p.blobs ?? []).slice(1, 6), p.doubles?.[1]])).toEqual([
			[["-"], "", "/api/me", "GET", "4xx", "none", 401],
			[["-"], "", "(none)", "GET", "4xx", "none", 404],
			[[t.orgId], t.orgId, "/api/orgs/:orgId/admin-data", "GET", "4xx", "session", 403],
		]);
	});

	it("auth kinds: the session cookie, a tenant API key, a webhook signature", async () => {
		const t = await seedTenant();
		const created = await call<Body<"POST /api/orgs/:orgId/api-keys">>("POST", `${t.base}/api-keys`, {
			token: t.admin.token,
			body: { name: "metrics", permissions: ["org:products:read"] },
		});
		expect(created.status, created.text).toBe(201);
		const { points, METRICS } = metricsRecorder();
		expect((await callWithEnv({ METRICS }, "GET", "/api/me", { headers: { cookie: `__session=${t.admin.token}` } })).status).toBe(200);
		expect((await callWithEnv({ METRICS }, "GET", `${t.base}/products`, { token: created.json.key })).status).toBe(200);
		const raw = JSON.stringify(envelope("user.created", userData(uid("user"))));
		vi.spyOn(env.WEBHOOK_QUEUE, "send").mockResolvedValue(undefined as never);
		expect((await callWithEnv({ METRICS }, "POST", "/api/webhooks/clerk", { body: raw, headers: svixHeaders(raw) })).status).toBe(202);
		expect(points.map((p) => [p.blobs?.[2], p.blobs?.[4], p.blobs?.[5]])).toEqual([
			["/api/me", "2xx", "cookie"],
			["/api/orgs/:orgId/products", "2xx", "api_key"],
			["/api/webhooks/clerk", "2xx", "signature"],
		]);
	});

	it("without the binding nothing is written and requests answer as usual; a failing dataset fails nothing", async () => {
		// Locally the binding is Miniflare's dataset simulator, which drops what is written.
		expect(typeof env.METRICS?.writeDataPoint).toBe("function");
		expect((await call("GET", "/api/health")).status).toBe(200);
		expect((await callWithEnv({ METRICS: undefined }, "GET", "/api/health")).status).toBe(200);
		const broken = { writeDataPoint: vi.fn(() => { throw new Error("dataset unavailable"); }) };
		expect((await callWithEnv({ METRICS: broken }, "GET", "/api/health")).status).toBe(200);
		expect(broken.writeDataPoint).toHaveBeenCalledTimes(1);
		expect(() =>
			recordRequest({}, { organizationId: null, route: "/api/health", method: "GET", status: 200, durationMs: 1, auth: "none", traceId: TRACE_ID }),
		).not.toThrow();
	});
});

describe("metrics: one data point per queue batch", () => {
	it("webhook-events: messages, acked, retried, lag of the oldest and mean, duration", async () => {
		const { points, METRICS } = metricsRecorder();
		const events = [messageFor(envelope("user.created", userData(uid("user")))), messageFor(envelope("user.created", userData(uid("user"))))];
		const sentAt = new Date(Date.now() - 5_000);
		const result = await runQueue(QUEUE, [...events, { not: "a webhook message" }], 1, { env: { METRICS }, sentAt });
		expect(result.explicitAcks).toHaveLength(3);
		expect(points).toEqual([
			{
				indexes: [QUEUE],
				blobs: ["queue_batch", QUEUE, "ok"],
				doubles: [3, 3, 0, expect.any(Number), expect.any(Number), expect.any(Number)],
			},
		]);
		const [, , , lagMax, lagMean, duration] = points[0]!.doubles!;
		expect(lagMax).toBeGreaterThanOrEqual(5_000);
		expect(lagMean).toBeGreaterThanOrEqual(5_000);
		expect(duration).toBeGreaterThanOrEqual(0);
	});

	it("tenant-events: an event that waits (its tenant is being moved) counts as retried", async () => {
		const orgId = await seedOrg();
		await env.DB.prepare("UPDATE organizations SET store_state = 'migrating' WHERE id = ?").bind(orgId).run();
		const { points, METRICS } = metricsRecorder();
		const audit = {
			kind: "audit",
			id: uid("aud"),
			organizationId: orgId,
			actorType: "system",
			actorId: null,
			action: "test.waited",
			targetType: null,
			targetId: null,
			occurredAt: Date.now(),
		};
		const result = await runQueue("tenant-events", [audit, { kind: "unknown" }], 1, { env: { METRICS } });
		expect(result.retryMessages).toHaveLength(1);
		expect(points.map((p) => [p.blobs, p.doubles?.slice(0, 3)])).toEqual([[["queue_batch", "tenant-events", "ok"], [2, 1, 1]]]);
	});

	it("a handler that throws: outcome error, every undecided message retried", async () => {
		const { points, METRICS } = metricsRecorder();
		await expect(runQueue("no-such-queue", [{ a: 1 }, { a: 2 }], 1, { env: { METRICS } })).rejects.toThrow(/no consumer/);
		expect(points.map((p) => [p.indexes, p.blobs, p.doubles?.slice(0, 3)])).toEqual([
			[["no-such-queue"], ["queue_batch", "no-such-queue", "error"], [2, 0, 2]],
		]);
	});
});

describe("tracing: W3C traceparent", () => {
	it("continues the caller's trace: same trace id and flags, a span of its own, in the log line, the problem and the answer", async () => {
		const logs = captureLogs();
		const res = await callWithEnv<Problem>({ LOG_LEVEL: "info" }, "GET", "/api/nope", { headers: { traceparent: traceparent() } });
		expect(res.status).toBe(404);
		const span = answered(res);
		expect(span).toMatchObject({ traceId: TRACE_ID, sampled: true });
		expect(span.spanId).not.toBe(PARENT_ID);
		expect(res.json).toMatchObject({ status: 404, traceId: TRACE_ID, requestId: expect.any(String) });
		const line = logs.find((l) => l.msg === "request");
		expect(line).toMatchObject({ traceId: TRACE_ID, spanId: span.spanId, parentSpanId: PARENT_ID, requestId: res.json.requestId, status: 404 });
		// An unsampled caller stays unsampled.
		expect(answered(await call("GET", "/api/health", { headers: { traceparent: traceparent("00") } }))).toMatchObject({ traceId: TRACE_ID, sampled: false });
	});

	it("a later version's traceparent is read by its first four fields", async () => {
		const res = await call("GET", "/api/health", { headers: { traceparent: `cc-${TRACE_ID}-${PARENT_ID}-01-what-comes-next` } });
		expect(answered(res).traceId).toBe(TRACE_ID);
	});

	const malformed: [string, string][] = [
		["uppercase hex", `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`],
		["all-zero trace id", `00-${"0".repeat(32)}-${PARENT_ID}-01`],
		["all-zero parent id", `00-${TRACE_ID}-${"0".repeat(16)}-01`],
		["version ff", `ff-${TRACE_ID}-${PARENT_ID}-01`],
		["version 00 with more fields", `00-${TRACE_ID}-${PARENT_ID}-01-extra`],
		["short trace id", `00-${TRACE_ID.slice(1)}-${PARENT_ID}-01`],
		["not a traceparent", "hello"],
	];
	it.each(malformed)("starts a new trace when the traceparent is malformed: %s", async (_name, value) => {
		const res = await call<Problem>("GET", "/api/me", { headers: { traceparent: value } });
		expect(res.status).toBe(401);
		const span = answered(res);
		expect(span.traceId).not.toBe(TRACE_ID);
		expect(res.json.traceId).toBe(span.traceId);
	});

	it("starts a trace when none is sent: the answer's traceparent and the problem's traceId agree", async () => {
		const res = await call<Problem>("GET", "/api/me");
		expect(res.status).toBe(401);
		expect(res.json.traceId).toBe(answered(res).traceId);
	});

	it("a tenant-store request: one line at info; at debug, the store's line continues the Worker's span", async () => {
		const t = await seedTenant();
		const atInfo = captureLogs();
		const first = await callWithEnv({ LOG_LEVEL: "info" }, "GET", `${t.base}/products`, { token: t.member.token, headers: { traceparent: traceparent() } });
		expect(first.status, first.text).toBe(200);
		expect(atInfo.filter((l) => l.msg === "request" && l.traceId === TRACE_ID)).toEqual([
			expect.objectContaining({ spanId: answered(first).spanId, route: "/api/orgs/:orgId/products", status: 200 }),
		]);

		const logs = captureLogs();
		const res = await callWithEnv({ LOG_LEVEL: "debug" }, "GET", `${t.base}/products`, {
			token: t.member.token,
			headers: { traceparent: traceparent() },
		});
		expect(res.status, res.text).toBe(200);
		const worker = answered(res);
		const lines = logs.filter((l) => l.msg === "request" && l.traceId === TRACE_ID);
		expect(lines).toHaveLength(2);
		const inWorker = lines.find((l) => l.spanId === worker.spanId);
		const inStore = lines.find((l) => l.parentSpanId === worker.spanId);
		expect(inWorker).toMatchObject({ parentSpanId: PARENT_ID, route: "/api/orgs/:orgId/products", orgId: t.orgId, status: 200 });
		expect(inStore).toMatchObject({ route: "/api/orgs/:orgId/products", requestId: inWorker!.requestId, status: 200 });
		expect(inStore!.spanId).not.toBe(worker.spanId);
	});

	it("webhook ingest -> queue -> consumer: the event's consumer lines carry its ingest request's trace", async () => {
		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send").mockResolvedValue(undefined as never);
		const logs = captureLogs();
		const raw = JSON.stringify(envelope("user.created", userData(uid("user"))));
		const headers = { ...svixHeaders(raw), traceparent: traceparent() };
		const res = await callWithEnv({ LOG_LEVEL: "info" }, "POST", "/api/webhooks/clerk", { body: raw, headers });
		expect(res.status, res.text).toBe(202);
		const ingest = answered(res);
		const [message] = send.mock.calls[0] as [WebhookMessage];
		expect(parseTraceparent(message.traceparent)).toEqual({ traceId: TRACE_ID, parentId: ingest.spanId, sampled: true });
		expect(logs.find((l) => l.msg === "webhook event queued")).toMatchObject({ traceId: TRACE_ID, svixId: headers["svix-id"] });

		const result = await deliver([message], { env: { LOG_LEVEL: "info" } });
		expect(result.explicitAcks).toHaveLength(1);
		const applied = logs.find((l) => l.msg === "webhook event applied");
		expect(applied).toMatchObject({ traceId: TRACE_ID, parentSpanId: ingest.spanId, svixId: headers["svix-id"], queue: QUEUE, type: "user.created" });
		// The batch's own lines have a trace of their own.
		const batch = logs.find((l) => l.msg === "webhook batch applied");
		expect(batch?.traceId).toMatch(/^[0-9a-f]{32}$/);
		expect(batch?.traceId).not.toBe(TRACE_ID);
	});

	it("an operator replay queues the event on the operator request's trace", async () => {
		const first = messageFor(envelope("user.created", userData(uid("user"))));
		expect((await deliver([first])).explicitAcks).toHaveLength(1);
		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send").mockResolvedValue(undefined as never);
		const operator = await signToken({ userId: TEST_OPERATOR, expiresIn: 600 });
		const res = await call("POST", `/api/admin/events/${first.svixId}/replay`, { token: operator, headers: { traceparent: traceparent() } });
		expect(res.status, res.text).toBe(202);
		const [message] = send.mock.calls[0] as [WebhookMessage];
		expect(message).toMatchObject({ svixId: first.svixId, replay: true });
		expect(parseTraceparent(message.traceparent)).toEqual({ traceId: TRACE_ID, parentId: answered(res).spanId, sampled: true });
	});
});
