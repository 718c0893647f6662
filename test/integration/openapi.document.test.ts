import { describe, expect, it, vi } from "vitest";
import { operationIdFor } from "../../src/openapi-document";
import { fakeClerkApi } from "../helpers/clerk-api";
import { uid } from "../helpers/factories";
import { fakeRazorpay, fakeReceiver, stubNetwork } from "../helpers/network";
import { call, callWithEnv, get, type Problem } from "../helpers/request";
import { seedTenant } from "../helpers/tenant";
import { TEST_AZP } from "../helpers/vars";

/** The parts of the served OpenAPI document these tests read. */
interface Ref {
	$ref?: string;
}
interface DocResponse {
	description: string;
	headers?: Record<string, Ref>;
	content?: Record<string, { schema: unknown }>;
}
interface Operation {
	operationId?: string;
	deprecated?: boolean;
	security?: Record<string, string[]>[];
	parameters?: { name: string; in: string; required?: boolean; description?: string; schema?: { pattern?: string } }[];
	requestBody?: { required?: boolean; content: Record<string, { schema: { required?: string[] } }> };
	responses: Record<string, DocResponse>;
}
interface Doc {
	info: { license?: { name: string; identifier?: string }; contact?: { name?: string } };
	servers?: { url: string }[];
	components: {
		securitySchemes: Record<string, { type: string; in?: string; name?: string; scheme?: string; description?: string }>;
		headers: Record<string, { required?: boolean; description?: string; schema: unknown }>;
		schemas: Record<string, { required?: string[]; properties?: Record<string, { pattern?: string }> }>;
	};
	paths: Record<string, Record<string, Operation>>;
}

const served = async () => {
	const res = await get<Doc>("/api/openapi.json");
	expect(res.status, res.text).toBe(200);
	return res.json;
};

const operations = (doc: Doc) =>
	Object.entries(doc.paths).flatMap(([path, ops]) =>
		Object.entries(ops).map(([method, op]) => ({ where: `${method.toUpperCase()} ${path}`, method, path, op })),
	);

/** Operations anyone may call. */
const PUBLIC = new Set(["GET /api/health", "GET /api/health/ready"]);
/** Provider webhooks: their own signature schemes. */
const WEBHOOKS: Record<string, Record<string, string[]>[]> = {
	"POST /api/webhooks/clerk": [{ clerkSvix: [] }, { clerkStandardWebhooks: [] }],
	"POST /api/webhooks/razorpay": [{ razorpaySignature: [] }],
	"POST /api/webhooks/stripe": [{ stripeSignature: [] }],
};
const SECURED = [{ bearer: [] }, { session: [] }];

const headerRef = (name: string) => ({ $ref: `#/components/headers/${name}` });
const RATE_LIMIT = ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"];
const MORE_HEADERS = ["Cache-Control", "Idempotent-Replayed", "Deprecation", "Link"];

describe("OpenAPI document quality", () => {
	it("has servers, a license, a contact and the shared components", async () => {
		const doc = await served();
		expect(doc.servers?.length).toBeGreaterThan(0);
		expect(doc.info.license).toEqual({ name: "Proprietary", identifier: "LicenseRef-Proprietary" });
		expect(doc.info.contact?.name).toBeTruthy();
		const schemes = doc.components.securitySchemes;
		expect(schemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
		expect(schemes.bearer!.description).toContain("sk_live_");
		expect(schemes.session).toMatchObject({ type: "apiKey", in: "cookie", name: "__session" });
		expect(schemes.session!.description).toMatch(/Origin.*CLERK_AUTHORIZED_PARTIES.*403/s);
		expect(schemes.clerkSvix).toMatchObject({ type: "apiKey", in: "header", name: "svix-signature" });
		expect(schemes.clerkStandardWebhooks).toMatchObject({ type: "apiKey", in: "header", name: "webhook-signature" });
		expect(schemes.razorpaySignature).toMatchObject({ type: "apiKey", in: "header", name: "x-razorpay-signature" });
		expect(schemes.stripeSignature).toMatchObject({ type: "apiKey", in: "header", name: "stripe-signature" });
		for (const h of ["X-Request-Id", "traceparent", ...RATE_LIMIT, "Retry-After", "WWW-Authenticate", "Allow", "Location", ...MORE_HEADERS]) {
			expect(doc.components.headers[h], h).toBeDefined();
		}
		// Problems carry the request's trace id next to its request id (an extension member of RFC 9457).
		const problem = doc.components.schemas.Problem!;
		expect(problem.required).toEqual(expect.arrayContaining(["type", "title", "status", "detail", "requestId", "traceId", "code"]));
		expect(problem.properties?.traceId?.pattern).toBe("^[0-9a-f]{32}$");
	});

	it("every operation has a unique operationId derived from its method and path", async () => {
		const doc = await served();
		const ids = new Map<string, string>();
		for (const { where, method, path, op } of operations(doc)) {
			expect(op.operationId, where).toBe(operationIdFor(method, path));
			expect(op.operationId, where).toMatch(/^[a-z][A-Za-z0-9]*$/);
			expect(ids.get(op.operationId!), `${where} reuses ${op.operationId}`).toBeUndefined();
			ids.set(op.operationId!, where);
		}
		expect(operationIdFor("get", "/api/orgs/{orgId}/products/{productId}")).toBe("getOrgsProductsById");
		expect(operationIdFor("post", "/api/orgs/{orgId}/audit-logs/verify")).toBe("postOrgsAuditLogsVerify");
	});

	it("secured operations list bearer and the session cookie, public ones none, webhooks their signature", async () => {
		const doc = await served();
		for (const { where, op } of operations(doc)) {
			if (PUBLIC.has(where)) expect(op.security, where).toEqual([]);
			else if (WEBHOOKS[where]) expect(op.security, where).toEqual(WEBHOOKS[where]);
			else expect(op.security, where).toEqual(SECURED);
			for (const req of op.security ?? []) for (const name of Object.keys(req)) expect(doc.components.securitySchemes[name], name).toBeDefined();
		}
	});

	it("the server agrees: every bearer operation answers 401 with WWW-Authenticate without a credential, public ones do not", async () => {
		const doc = await served();
		for (const { where, method, path, op } of operations(doc)) {
			if (WEBHOOKS[where]) continue;
			const res = await call(method.toUpperCase(), path.replace(/\{[^}]+\}/g, "x_1"), { body: method === "get" ? undefined : {} });
			if (PUBLIC.has(where)) {
				expect(res.status, where).toBe(200);
				continue;
			}
			expect(res.status, `${where}: ${res.text}`).toBe(401);
			expect(res.headers.get("www-authenticate"), where).toBe("Bearer");
			expect(Object.keys(op.responses), where).toContain("401");
		}
	});

	it("the session cookie authenticates; a cookie write needs an allowed Origin (documented CSRF rule)", async () => {
		const t = await seedTenant();
		const cookie = { cookie: `__session=${t.admin.token}` };
		expect((await get("/api/me", undefined, cookie)).status).toBe(200);
		const body = { name: "Tea", slug: "tea" };
		const foreign = await call("POST", `${t.base}/categories`, { body, headers: { ...cookie, origin: "https://evil.example" } });
		expect(foreign.status, foreign.text).toBe(403);
		const allowed = await call("POST", `${t.base}/categories`, { body, headers: { ...cookie, origin: TEST_AZP } });
		expect(allowed.status, allowed.text).toBe(201);
	});

	it("declares the response headers: X-Request-Id and traceparent everywhere, WWW-Authenticate on 401, Retry-After on 429/503, RateLimit-*, Allow on 405", async () => {
		const doc = await served();
		for (const { where, op } of operations(doc)) {
			const limited = !WEBHOOKS[where];
			for (const [status, r] of Object.entries(op.responses)) {
				const at = `${where} ${status}`;
				expect(r.headers?.["X-Request-Id"], at).toEqual(headerRef("X-Request-Id"));
				expect(r.headers?.traceparent, at).toEqual(headerRef("traceparent"));
				if (status === "401") expect(r.headers?.["WWW-Authenticate"], at).toEqual(headerRef("WWW-Authenticate"));
				if (status === "429" || status === "503") expect(r.headers?.["Retry-After"], at).toEqual(headerRef("Retry-After"));
				if (status === "405") expect(r.headers?.Allow, at).toEqual(headerRef("Allow"));
				if (status === "429" || (limited && status.startsWith("2"))) {
					for (const h of RATE_LIMIT) expect(r.headers?.[h], `${at} ${h}`).toEqual(headerRef(h));
				}
				if (Number(status) >= 400) expect(Object.keys(r.content ?? {}), at).toEqual(["application/problem+json"]);
			}
			expect(doc.components.headers["X-Request-Id"]!.required).toBe(true);
			expect(doc.components.headers.traceparent!.required).toBe(true);
			expect(doc.components.headers["WWW-Authenticate"]!.required).toBe(true);
		}
		// A provider webhook spends the rate budget only for requests whose signature did not verify.
		for (const p of ["/api/webhooks/clerk", "/api/webhooks/razorpay", "/api/webhooks/stripe"]) {
			const hook = doc.paths[p]!.post!;
			expect(hook.responses["202"]!.headers?.["RateLimit-Limit"], p).toBeUndefined();
			for (const s of ["400", "401", "413", "429"]) {
				expect(hook.responses[s]!.headers?.["RateLimit-Limit"], `${p} ${s}`).toEqual(headerRef("RateLimit-Limit"));
			}
		}
	});

	it("every operation documents the problem responses generated clients need", async () => {
		const doc = await served();
		for (const { where, op } of operations(doc)) {
			const statuses = Object.keys(op.responses);
			for (const s of ["400", "405", "429", "500"]) expect(statuses, where).toContain(s);
			if (!PUBLIC.has(where) && !WEBHOOKS[where]) for (const s of ["401", "403", "503"]) expect(statuses, where).toContain(s);
			if (WEBHOOKS[where]) for (const s of ["401", "413", "415"]) expect(statuses, where).toContain(s);
			if ((op.parameters ?? []).some((p) => p.in === "path")) expect(statuses, where).toContain("404");
			if ((op.parameters ?? []).some((p) => p.name === "if-match")) expect(statuses, where).toContain("412");
			if ((op.parameters ?? []).some((p) => p.name === "idempotency-key")) expect(statuses, where).toContain("409");
		}
	});

	it("provider webhooks declare their JSON body and signature headers", async () => {
		const doc = await served();
		const op = (p: string) => doc.paths[p]!.post!;
		const params = (p: string) => Object.fromEntries((op(p).parameters ?? []).map((x) => [x.name, x]));
		const required = (p: string) => op(p).requestBody?.content["application/json"]?.schema.required;
		for (const p of ["/api/webhooks/clerk", "/api/webhooks/razorpay", "/api/webhooks/stripe"]) expect(op(p).requestBody?.required, p).toBe(true);
		expect(required("/api/webhooks/clerk")).toEqual(["type", "data"]);
		expect(required("/api/webhooks/razorpay")).toEqual(["event"]);
		expect(required("/api/webhooks/stripe")).toEqual(["id", "type", "created"]);
		const clerk = params("/api/webhooks/clerk");
		for (const h of ["svix-id", "svix-timestamp", "webhook-id", "webhook-timestamp"]) expect(clerk[h]?.in, h).toBe("header");
		expect(params("/api/webhooks/razorpay")["x-razorpay-signature"]).toMatchObject({ in: "header", required: true });
		expect(params("/api/webhooks/stripe")["stripe-signature"]).toMatchObject({ in: "header", required: true });
	});

	it("a rate-limited response sends the RateLimit-* headers the document declares", async () => {
		const t = await seedTenant();
		const res = await callWithEnv({ RATE_LIMIT_MODE: "strict" }, "GET", `${t.base}/products`, { token: t.member.token });
		expect(res.status, res.text).toBe(200);
		for (const h of RATE_LIMIT) expect(res.headers.get(h), h).toMatch(/^\d+$/);
		expect(res.headers.get("x-request-id")).toBeTruthy();
	});
});

describe("the other headers the server sends, and the write preconditions", () => {
	it("declares Cache-Control on authenticated operations and every problem answer, Idempotent-Replayed on the 2xx of Idempotency-Key operations, Deprecation and Link on deprecated aliases and the camelCase verify", async () => {
		const doc = await served();
		const deprecated: string[] = [];
		for (const { where, op } of operations(doc)) {
			const secured = !PUBLIC.has(where) && !WEBHOOKS[where];
			const idempotent = (op.parameters ?? []).some((p) => p.in === "header" && p.name === "idempotency-key");
			if (op.deprecated) deprecated.push(where);
			for (const [status, r] of Object.entries(op.responses)) {
				const at = `${where} ${status}`;
				expect(r.headers?.["Cache-Control"], at).toEqual(secured || /^[45]/.test(status) ? headerRef("Cache-Control") : undefined);
				expect(r.headers?.["Idempotent-Replayed"], at).toEqual(idempotent && status.startsWith("2") ? headerRef("Idempotent-Replayed") : undefined);
				// An alias, or an operation with a deprecated body form (camelCase verify).
				const marked = op.deprecated || where === "POST /api/payments/verify";
				expect(r.headers?.Deprecation, at).toEqual(marked ? headerRef("Deprecation") : undefined);
				expect(r.headers?.Link, at).toEqual(marked ? headerRef("Link") : undefined);
			}
		}
		expect(deprecated.sort()).toEqual(["GET /api/org/{orgId}/admin-data", "POST /api/payments/create-order"]);
		// Every POST that runs the idempotency middleware declares the header, with the shape it enforces.
		for (const where of ["POST /api/payments/orders", "POST /api/payments/create-order", "POST /api/orgs/{orgId}/orders"]) {
			const [method, path] = where.split(" ") as [string, string];
			const key = doc.paths[path]![method.toLowerCase()]!.parameters?.find((p) => p.name === "idempotency-key");
			expect(key, where).toMatchObject({ in: "header", schema: { pattern: "^[\\x21-\\x7e]{1,255}$" } });
			expect(key?.required ?? false, where).toBe(false);
		}
		// x-d1-bookmark is not sent by any route, so it is not declared.
		expect(doc.components.headers["x-d1-bookmark"]).toBeUndefined();
	});

	it("a replayed POST sends Idempotent-Replayed: true, declared for its status; the first answer does not", async () => {
		const t = await seedTenant();
		const doc = await served();
		const key = uid("key");
		const send = () =>
			call<{ id: string }>("POST", `${t.base}/categories`, { token: t.admin.token, headers: { "idempotency-key": key }, body: { name: "Tea", slug: "tea" } });
		const first = await send();
		expect(first.status, first.text).toBe(201);
		expect(first.headers.get("idempotent-replayed")).toBeNull();
		const replay = await send();
		expect(replay.status, replay.text).toBe(201);
		expect(replay.headers.get("idempotent-replayed")).toBe("true");
		expect(replay.json.id).toBe(first.json.id);
		expect(doc.paths["/api/orgs/{orgId}/categories"]!.post!.responses["201"]!.headers?.["Idempotent-Replayed"]).toEqual(headerRef("Idempotent-Replayed"));
	});

	it("If-Match is optional on every write that takes it (no 428 anywhere): without it the write is unconditional, a stale one is a 412", async () => {
		const doc = await served();
		let ifMatch = 0;
		for (const { where, op } of operations(doc)) {
			expect(Object.keys(op.responses), where).not.toContain("428");
			for (const p of op.parameters ?? []) {
				if (p.name !== "if-match") continue;
				ifMatch++;
				expect(p.required ?? false, where).toBe(false);
				expect(p.description, where).toMatch(/Optional.*412.*unconditional.*428/s);
			}
		}
		expect(ifMatch).toBeGreaterThanOrEqual(7);

		const t = await seedTenant();
		const created = await call<{ id: string }>("POST", `${t.base}/categories`, { token: t.admin.token, body: { name: "Tea", slug: "tea" } });
		expect(created.status, created.text).toBe(201);
		const path = `${t.base}/categories/${created.json.id}`;
		const etag = created.headers.get("etag")!;
		const unconditional = await call("PATCH", path, { token: t.admin.token, body: { name: "Chai" } });
		expect(unconditional.status, unconditional.text).toBe(200);
		const stale = await call<Problem>("PATCH", path, { token: t.admin.token, headers: { "if-match": etag }, body: { name: "Masala" } });
		expect(stale.status, stale.text).toBe(412);
		const current = await call("PATCH", path, { token: t.admin.token, headers: { "if-match": unconditional.headers.get("etag")! }, body: { name: "Masala" } });
		expect(current.status, current.text).toBe(200);
	});
});

describe("Location on created resources", () => {
	it("the document declares Location on exactly the 201s that create an item of a collection", async () => {
		const doc = await served();
		const withLocation = operations(doc)
			.filter(({ op }) => op.responses["201"]?.headers?.Location)
			.map(({ where }) => where)
			.sort();
		expect(withLocation).toEqual(
			[
				"POST /api/orgs/{orgId}/categories",
				"POST /api/orgs/{orgId}/products",
				"POST /api/orgs/{orgId}/products/{productId}/variants",
				"POST /api/orgs/{orgId}/orders",
				"POST /api/orgs/{orgId}/webhooks",
				"POST /api/orgs/{orgId}/invitations",
				"POST /api/orgs/{orgId}/api-keys",
				"POST /api/payments/orders",
			].sort(),
		);
	});

	it("store, webhook endpoint, invitation, API key and payment order creates send Location to the new resource", async () => {
		const clerk = fakeClerkApi();
		const receiver = fakeReceiver();
		const razorpay = fakeRazorpay();
		stubNetwork(vi, { routes: { ...clerk.routes, ...receiver.routes, ...razorpay.routes } });
		const t = await seedTenant({
			plan: "pro",
			members: { admin: { role: "org:admin", activeOrg: true }, member: { role: "org:member", activeOrg: true } },
		});
		const token = t.admin.token;
		const post = async (path: string, body: unknown) => {
			const res = await call<{ id: string; paymentOrderId?: string }>("POST", path, { token, body });
			expect(res.status, `${path}: ${res.text}`).toBe(201);
			return res;
		};
		const expectLocation = async (path: string, body: unknown, readable = true) => {
			const res = await post(path, body);
			const id = res.json.paymentOrderId ?? res.json.id;
			expect(res.headers.get("location"), path).toBe(`${path}/${id}`);
			if (readable) expect((await get(res.headers.get("location")!, token)).status, `GET ${path}/${id}`).toBe(200);
			return id;
		};

		await expectLocation(`${t.base}/categories`, { name: "Tea", slug: "tea" });
		const productId = await expectLocation(`${t.base}/products`, {
			name: "Chai",
			sku: uid("SKU"),
			priceMinor: 25000,
			currency: "INR",
			status: "active",
			stock: 10,
		});
		await expectLocation(`${t.base}/products/${productId}/variants`, { name: "500g", sku: uid("V"), priceMinor: 45000, stock: 5 }, false);
		await expectLocation(`${t.base}/orders`, { items: [{ productId, quantity: 1 }] });
		await expectLocation(`${t.base}/webhooks`, { url: "https://hooks.tenant.example.com/in", eventTypes: ["order.created"] });
		await expectLocation(`${t.base}/invitations`, { emailAddress: "new.person@example.com", role: "org:member" }, false);
		await expectLocation(`${t.base}/api-keys`, { name: "ci", permissions: ["org:products:read"] });
		await expectLocation("/api/payments/orders", { amount: 49900, currency: "INR" });
	});
});
