import { describe, expect, it } from "vitest";
import { get } from "../helpers/request";

describe("GET /api/health", () => {
	it("answers ok without auth, with a request id", async () => {
		const res = await get("/api/health");
		expect(res.status, res.text).toBe(200);
		expect(res.json).toEqual({ status: "ok" });
		expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
	});

	it("unknown routes are problem+json 404 with the request id", async () => {
		const res = await get("/api/nope", undefined, { "x-request-id": "req-12345678" });
		expect(res.status).toBe(404);
		expect(res.headers.get("content-type")).toBe("application/problem+json");
		expect(res.json).toMatchObject({ status: 404, title: "Not found", requestId: "req-12345678" });
		expect(res.json.type).toMatch(/^https:\/\//);
	});
});
