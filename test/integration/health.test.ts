import { describe, expect, it } from "vitest";
import { call, get, type Problem } from "../helpers/request";

describe("GET /api/health", () => {
	it("answers ok without auth, with a request id", async () => {
		const res = await get("/api/health");
		expect(res.status, res.text).toBe(200);
		expect(res.json).toEqual({ status: "ok" });
		expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
	});

	it("unknown routes are problem+json 404 with the request id", async () => {
		const res = await get<Problem>("/api/nope", undefined, { "x-request-id": "req-12345678" });
		expect(res.status).toBe(404);
		expect(res.headers.get("content-type")).toBe("application/problem+json");
		expect(res.json).toMatchObject({ status: 404, title: "Not found", requestId: "req-12345678" });
		expect(res.json.type).toMatch(/^https:\/\//);
	});
});

describe("CORS and body limits", () => {
	it("preflight: allowed frontends (CLERK_AUTHORIZED_PARTIES) get CORS headers, others do not", async () => {
		const ok = await call("OPTIONS", "/api/me", {
			headers: {
				origin: "https://app.test.example",
				"access-control-request-method": "GET",
				"access-control-request-headers": "authorization",
			},
		});
		expect(ok.status).toBe(204);
		expect(ok.headers.get("access-control-allow-origin")).toBe("https://app.test.example");
		expect(ok.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("authorization");
		// Every request header the API reads may be sent cross-origin: read-your-writes needs the bookmark back.
		const allowed = ok.headers.get("access-control-allow-headers")!.toLowerCase().split(/\s*,\s*/);
		expect(allowed).toEqual(
			expect.arrayContaining(["authorization", "content-type", "idempotency-key", "if-match", "x-request-id", "traceparent", "tracestate", "x-d1-bookmark"]),
		);
		const evil = await call("OPTIONS", "/api/me", {
			headers: { origin: "https://evil.example", "access-control-request-method": "GET" },
		});
		expect(evil.headers.get("access-control-allow-origin")).toBeNull();
		const simple = await get("/api/health", undefined, { origin: "https://app.test.example" });
		expect(simple.headers.get("access-control-expose-headers")).toContain("X-Request-Id");
	});

	it("JSON bodies over 256 KiB are refused with problem+json before any work", async () => {
		const res = await call("POST", "/api/orgs/org_x/products", { body: JSON.stringify({ name: "x".repeat(300 * 1024) }) });
		expect(res.status, res.text).toBe(413);
		expect(res.json).toMatchObject({ status: 413, code: "PAYLOAD_TOO_LARGE" });
	});
});
