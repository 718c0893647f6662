import { describe, expect, it } from "vitest";
import { call, fetchWorker, get, type Problem } from "../helpers/request";
import { seedTenant } from "../helpers/tenant";
import { TEST_AZP } from "../helpers/vars";

let skus = 0;
const product = () => ({ name: "Mug", sku: `MUG-${++skus}`, currency: "INR", priceMinor: 1200 });

const corsHeaders = (h: Headers) => [...h.keys()].filter((k) => k.startsWith("access-control-"));

describe("response headers", () => {
	it("authenticated JSON answers carry Cache-Control: no-store and nosniff, errors included", async () => {
		const t = await seedTenant();
		const ok = await get("/api/me", t.admin.token);
		expect(ok.status, ok.text).toBe(200);
		expect(ok.headers.get("cache-control")).toBe("no-store");
		expect(ok.headers.get("x-content-type-options")).toBe("nosniff");
		const forbidden = await get<Problem>(`/api/orgs/${t.orgId}/admin-data`, t.member.token);
		expect(forbidden.status).toBe(403);
		expect(forbidden.headers.get("cache-control")).toBe("no-store");
		expect(forbidden.headers.get("x-content-type-options")).toBe("nosniff");
	});

	it("every problem answer carries Cache-Control: no-store, also refusals made before or during authentication", async () => {
		const t = await seedTenant();
		const key = await call<{ key: string }>("POST", `${t.base}/api-keys`, { token: t.admin.token, body: { name: "k", permissions: ["org:products:read"] } });
		expect(key.status, key.text).toBe(201);
		const answers = [
			await get(`${t.base}/products`, "not-a-token"), // 401, a store path
			await get(`${t.base}/members`, "not-a-token"), // 401, a Worker path
			await get("/api/me"), // 401, no credential
			await get("/api/me/organizations", key.json.key), // 403: a key outside its routes, after it authenticated
			await call("POST", `${t.base}/products`, { headers: { cookie: `__session=${t.admin.token}` }, body: product() }), // 403: cookie write, no Origin
			await call("POST", `${t.base}/products`, { token: t.admin.token, body: "x".repeat(300 * 1024) }), // 413, before authentication
			// 413 also for an operation that takes no body (declared: the cap covers every write under /api/orgs/).
			await call("DELETE", `${t.base}/products/prd_x`, { token: t.admin.token, body: "x".repeat(300 * 1024) }),
			await get("/api/nope"), // 404, no route
		];
		expect(answers.map((r) => r.status)).toEqual([401, 401, 401, 403, 403, 413, 413, 404]);
		for (const res of answers) {
			expect(res.headers.get("content-type"), res.text).toBe("application/problem+json");
			expect(res.headers.get("cache-control"), `${res.status} ${res.text}`).toBe("no-store");
		}
	});

	it("every response carries X-Content-Type-Options: nosniff (public, 401, 404, docs)", async () => {
		for (const res of [await get("/api/health"), await get("/api/me"), await get("/api/nope"), await get("/docs"), await get("/api/openapi.json")]) {
			expect(res.headers.get("x-content-type-options"), res.text.slice(0, 80)).toBe("nosniff");
		}
	});
});

describe("CORS", () => {
	it("a foreign origin gets no CORS header at all, on simple requests and preflights", async () => {
		const simple = await get("/api/health", undefined, { origin: "https://evil.example" });
		expect(simple.status).toBe(200);
		expect(corsHeaders(simple.headers)).toEqual([]);
		const t = await seedTenant();
		const authed = await get("/api/me", t.admin.token, { origin: "https://evil.example" });
		expect(corsHeaders(authed.headers)).toEqual([]);
		const preflight = await call("OPTIONS", "/api/me", {
			headers: {
				origin: "https://evil.example",
				"access-control-request-method": "GET",
				"access-control-request-headers": "authorization",
			},
		});
		expect(corsHeaders(preflight.headers)).toEqual([]);
		expect(preflight.status).toBe(204);
		expect(preflight.headers.get("allow")).toContain("GET");
	});

	it("an allowed origin still gets its CORS headers", async () => {
		const preflight = await call("OPTIONS", "/api/me", {
			headers: { origin: TEST_AZP, "access-control-request-method": "GET" },
		});
		expect(preflight.status).toBe(204);
		expect(preflight.headers.get("access-control-allow-origin")).toBe(TEST_AZP);
		expect(preflight.headers.get("access-control-allow-credentials")).toBe("true");
	});
});

describe("CSRF: cookie-authenticated writes", () => {
	it("need an Origin in CLERK_AUTHORIZED_PARTIES; a Bearer header needs none", async () => {
		const t = await seedTenant();
		const cookie = { cookie: `__session=${t.admin.token}` };
		const path = `/api/orgs/${t.orgId}/products`;
		const noOrigin = await call<Problem>("POST", path, { headers: cookie, body: product() });
		expect(noOrigin.status, noOrigin.text).toBe(403);
		expect(noOrigin.json.detail).toContain("origin");
		const foreign = await call<Problem>("POST", path, { headers: { ...cookie, origin: "https://evil.example" }, body: product() });
		expect(foreign.status, foreign.text).toBe(403);
		const allowed = await call("POST", path, { headers: { ...cookie, origin: TEST_AZP }, body: product() });
		expect(allowed.status, allowed.text).toBe(201);
		const bearer = await call("POST", path, { token: t.admin.token, body: product() });
		expect(bearer.status, bearer.text).toBe(201);
		// Reads by cookie need no Origin.
		expect((await get(path, undefined, cookie)).status).toBe(200);
	});

	it("applies to DELETE and PATCH too", async () => {
		const t = await seedTenant();
		const created = await call<{ id: string }>("POST", `/api/orgs/${t.orgId}/products`, { token: t.admin.token, body: product() });
		const path = `/api/orgs/${t.orgId}/products/${created.json.id}`;
		const cookie = { cookie: `__session=${t.admin.token}` };
		expect((await call("PATCH", path, { headers: cookie, body: { name: "Cup" } })).status).toBe(403);
		expect((await call("DELETE", path, { headers: { ...cookie, origin: "https://evil.example" } })).status).toBe(403);
		expect((await get(path, t.admin.token)).status).toBe(200);
	});
});

describe("method and media type", () => {
	it("a known path with a wrong method answers 405 problem+json with Allow", async () => {
		const health = await call<Problem>("DELETE", "/api/health");
		expect(health.status, health.text).toBe(405);
		expect(health.headers.get("content-type")).toBe("application/problem+json");
		expect(health.json).toMatchObject({ status: 405, code: "METHOD_NOT_ALLOWED" });
		expect(health.headers.get("allow")).toBe("GET, HEAD, OPTIONS");
		const org = await call<Problem>("PUT", "/api/orgs/org_x", { body: {} });
		expect(org.status).toBe(405);
		expect(org.headers.get("allow")).toContain("GET");
		const products = await call("PUT", "/api/orgs/org_x/products", { body: {} });
		expect(products.status).toBe(405);
		expect(products.headers.get("allow")?.split(", ").sort()).toEqual(["GET", "HEAD", "OPTIONS", "POST"]);
		// Unknown paths stay 404.
		expect((await call("PUT", "/api/orgs/org_x/nothing-here")).status).toBe(404);
	});

	it("a non-JSON body on a JSON route answers 415 problem+json", async () => {
		const t = await seedTenant();
		const path = `/api/orgs/${t.orgId}/products`;
		for (const type of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]) {
			const res = await call<Problem>("POST", path, { token: t.admin.token, body: "name=Mug", headers: { "content-type": type } });
			expect(res.status, `${type}: ${res.text}`).toBe(415);
			expect(res.headers.get("content-type")).toBe("application/problem+json");
			expect(res.json).toMatchObject({ status: 415, code: "UNSUPPORTED_MEDIA_TYPE" });
			expect(res.json.detail).toContain("Content-Type: application/json");
		}
		const patch = await call("PATCH", `${path}/prod_x`, { token: t.admin.token, body: "{}", headers: { "content-type": "text/plain" } });
		expect(patch.status).toBe(415);
		// JSON with parameters and +json are fine.
		const ok = await call("POST", path, {
			token: t.admin.token,
			body: product(),
			headers: { "content-type": "application/json; charset=utf-8" },
		});
		expect(ok.status, ok.text).toBe(201);
	});

	it("the OpenAPI document lists 405 on every operation and 415 where the body is JSON", async () => {
		type Doc = { paths: Record<string, Record<string, { requestBody?: unknown; responses: Record<string, unknown> }>> };
		const doc = (await get<Doc>("/api/openapi.json")).json;
		let withBody = 0;
		for (const ops of Object.values(doc.paths)) {
			for (const op of Object.values(ops)) {
				expect(Object.keys(op.responses)).toContain("405");
				if (op.requestBody) {
					withBody++;
					expect(Object.keys(op.responses)).toContain("415");
				}
			}
		}
		expect(withBody).toBeGreaterThan(5);
		expect(Object.keys(doc.paths["/api/orgs/{orgId}/products"]!.get!.responses)).not.toContain("415");
	});
});

describe("through the tenant store (the gateway hands requests and answers over as plain values)", () => {
	it("HEAD on a store route answers like GET, without a body", async () => {
		const t = await seedTenant();
		const path = `/api/orgs/${t.orgId}/products`;
		const got = await call("GET", path, { token: t.member.token });
		const head = await call("HEAD", path, { token: t.member.token });
		expect(head.status).toBe(200);
		expect(head.text).toBe("");
		for (const name of ["content-type", "cache-control", "x-content-type-options", "ratelimit-limit"]) {
			expect(head.headers.get(name), name).toBe(got.headers.get(name));
		}
		expect(head.headers.get("x-request-id")).toMatch(/.{8,}/);
	});

	it("request bodies arrive byte for byte: multi-byte text round-trips, bytes that are not UTF-8 are a 400, not a 500", async () => {
		const t = await seedTenant();
		const path = `/api/orgs/${t.orgId}/products`;
		const name = "Chai ☕ 茶 — 𝄞";
		const description = "ü".repeat(5_000); // the longest description allowed, 10,000 bytes
		const created = await call<{ id: string }>("POST", path, { token: t.admin.token, body: { ...product(), name, description } });
		expect(created.status, created.text).toBe(201);
		const read = await get<{ name: string; description: string }>(`${path}/${created.json.id}`, t.admin.token);
		expect(read.json).toMatchObject({ name, description });

		const bytes = new Uint8Array([0x7b, 0x22, 0x6e, 0x61, 0x6d, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]); // {"name":"\xff\xfe"}
		const res = await fetchWorker(`https://api.test${path}`, {
			method: "POST",
			headers: { authorization: `Bearer ${t.admin.token}`, "content-type": "application/json" },
			body: bytes,
		});
		expect(res.status).toBe(400);
		expect(res.headers.get("content-type")).toBe("application/problem+json");
	});
});
