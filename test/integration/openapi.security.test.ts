import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { STORE_SEGMENTS } from "../../src/middleware/tenant-store";
import { envelope, svixHeaders, userData } from "../helpers/clerk";
import { fakeClerkApi } from "../helpers/clerk-api";
import { uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { fakeRazorpay, fakeReceiver, stubNetwork } from "../helpers/network";
import { type Body, call, get, type Problem, type TestResponse } from "../helpers/request";
import { storeSql } from "../helpers/store";
import { seedTenant } from "../helpers/tenant";
import { TEST_AZP, TEST_OPERATOR, TEST_RAZORPAY, TEST_STRIPE, TEST_WEBHOOK_SECRET } from "../helpers/vars";

/**
 * Every secured operation of the served document (/api/openapi.json, not a hand list), tried with each
 * security scheme it declares and with the ways to authenticate it does not declare:
 * - bearer: a Clerk session token in `Authorization: Bearer` works everywhere; a tenant API key (same
 *   scheme) on its organization's /api/orgs/{orgId}/… routes and /api/me, and 403 elsewhere;
 * - session: the `__session` cookie works everywhere; a write authenticated by it needs an Origin in
 *   CLERK_AUTHORIZED_PARTIES (the documented CSRF rule), else 403;
 * - the provider webhooks' signature schemes (svix-*, webhook-*, x-razorpay-signature, stripe-signature);
 * - undeclared: the same valid credential in the query, in Basic, in other cookies or headers: 401.
 * "Works" means the request gets past authentication: never 401, and no 403 for a caller who holds
 * every permission (the organization's admin; the operator on /api/admin/…); GET operations answer 200
 * on real resources, tenant data included, which its store serves once the token verified
 * (middleware/tenant-store.ts).
 */

interface Operation {
	security?: Record<string, string[]>[];
	requestBody?: unknown;
}
interface Doc {
	paths: Record<string, Record<string, Operation>>;
	components: { securitySchemes: Record<string, unknown> };
}
interface Op {
	/** "POST /api/orgs/{orgId}/categories" */
	where: string;
	method: string;
	path: string;
	op: Operation;
	schemes: string[];
}

const SESSION_SCHEMES = ["bearer", "session"];
const WEBHOOK_SCHEMES = ["clerkSvix", "clerkStandardWebhooks", "razorpaySignature", "stripeSignature"];
const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);
const BARE = "Bearer";
const INVALID = 'Bearer error="invalid_token"';

let doc: Doc;
let secured: Op[];
/** Path parameter values: real resources of the tenant, for reads. */
let real: Record<string, string>;
let admin: string;
let operator: string;
let apiKey: string;
let orgId: string;

/** Operations whose `security` names at least one scheme, from the served document. */
function securedOperations(d: Doc): Op[] {
	return Object.entries(d.paths).flatMap(([path, ops]) =>
		Object.entries(ops).flatMap(([method, op]) => {
			const schemes = (op.security ?? []).flatMap((req) => Object.keys(req));
			return schemes.length > 0 ? [{ where: `${method.toUpperCase()} ${path}`, method: method.toUpperCase(), path, op, schemes }] : [];
		}),
	);
}

const isOperatorRoute = (o: Op) => o.path.startsWith("/api/admin/");
const isStoreRoute = (o: Op) => o.path.startsWith("/api/orgs/{orgId}/") && STORE_SEGMENTS.has(o.path.split("/")[4] ?? "");
const isKeyRoute = (o: Op) => o.path === "/api/me" || o.path.startsWith("/api/orgs/{orgId}");
const sessionOps = () => secured.filter((o) => o.schemes.some((s) => SESSION_SCHEMES.includes(s)));

/**
 * The request path: reads address real resources; writes address unknown ones (their own organization
 * for /api/orgs/… collections, an unknown organization for the operator's writes), so nothing is changed
 * and every scheme meets the same state.
 */
function urlOf(o: Op): string {
	const write = !SAFE.has(o.method);
	return o.path.replace(/\{(\w+)\}/g, (_, name: string) => {
		if (name === "orgId" && !(write && isOperatorRoute(o))) return orgId;
		if (!write && real[name]) return real[name]!;
		return `${name.toLowerCase()}_unknown_1`;
	});
}

/** Who holds every permission an operation needs: the operator on /api/admin/…, the admin elsewhere. */
const tokenFor = (o: Op) => (isOperatorRoute(o) ? operator : admin);

/**
 * Sends `o` with these headers (and query) and, when it declares a body, an empty JSON object (nothing is
 * written). Through the Worker's fetch handler itself (`settle`): this file sends ~1,500 requests, and
 * `exports.default.fetch` gets slower with every request a test file has sent (cloudflare/workers-sdk#15446).
 */
function send(o: Op, headers: Record<string, string> = {}, query = ""): Promise<TestResponse<Problem>> {
	const url = urlOf(o);
	return call<Problem>(o.method, query ? `${url}?${query}` : url, { headers, body: o.op.requestBody ? {} : undefined, settle: true });
}

const cookie = (token: string) => ({ cookie: `__session=${token}` });
const allowedOrigin = (o: Op): Record<string, string> => (SAFE.has(o.method) ? {} : { origin: TEST_AZP });

/** "GET /api/x: 401 {…}" lines for answers that break `ok`; an empty list when all hold. */
async function each(ops: Op[], attempt: (o: Op) => Promise<string | null>): Promise<string[]> {
	const failures: string[] = [];
	for (const o of ops) {
		const failure = await attempt(o);
		if (failure) failures.push(`${o.where}: ${failure}`);
	}
	return failures;
}
const show = (res: TestResponse) => `${res.status} ${res.text.slice(0, 300)}`;

/** Past authentication: not 401, and (for a caller holding every permission) not 403; reads answer 200. */
function authenticated(o: Op, res: TestResponse): string | null {
	if (res.status === 401 || res.status === 403) return show(res);
	if (SAFE.has(o.method) && res.status !== 200) return `a read of real resources answered ${show(res)}`;
	return null;
}

/** A 401 problem with a Bearer challenge: the credential was not taken. */
function refused(res: TestResponse): string | null {
	const challenge = res.headers.get("www-authenticate");
	if (res.status !== 401 || (challenge !== BARE && challenge !== INVALID)) return `${show(res)} (WWW-Authenticate: ${challenge})`;
	if (res.headers.get("content-type") !== "application/problem+json") return `401 as ${res.headers.get("content-type")}`;
	return null;
}

/** A valid credential presented in places no scheme of the document declares, by kind: [how, headers, query]. */
const UNDECLARED: Record<string, (token: string) => [string, Record<string, string>, string][]> = {
	"in the query": (token) => [
		["?access_token=", {}, `access_token=${token}`],
		["?token=", {}, `token=${token}`],
		["?__session=", {}, `__session=${token}`],
		["?api_key=", {}, `api_key=${token}`],
		["?authorization=Bearer", {}, `authorization=${encodeURIComponent(`Bearer ${token}`)}`],
	],
	"as Basic credentials": (token) => [
		["Basic token:", { authorization: `Basic ${btoa(`${token}:`)}` }, ""],
		["Basic :token", { authorization: `Basic ${btoa(`:${token}`)}` }, ""],
		["Basic user:token", { authorization: `Basic ${btoa(`user:${token}`)}` }, ""],
	],
	"in another cookie": (token) => [
		["cookie session=", { cookie: `session=${token}` }, ""],
		["cookie token=", { cookie: `token=${token}` }, ""],
		["cookie __session_<suffix>= (Clerk's multi-domain name)", { cookie: `__session_Xy12AbCd=${token}` }, ""],
		["cookie Authorization=Bearer", { cookie: `Authorization=${encodeURIComponent(`Bearer ${token}`)}` }, ""],
	],
	"in another header or without the Bearer scheme": (token) => [
		["Authorization without a scheme", { authorization: token }, ""],
		["Authorization: Token", { authorization: `Token ${token}` }, ""],
		["X-Api-Key", { "x-api-key": token }, ""],
		["X-Auth-Token", { "x-auth-token": token }, ""],
		["Proxy-Authorization: Bearer", { "proxy-authorization": `Bearer ${token}` }, ""],
	],
};

beforeAll(async () => {
	const clerk = fakeClerkApi();
	const receiver = fakeReceiver();
	const razorpay = fakeRazorpay();
	stubNetwork(vi, { routes: { ...clerk.routes, ...receiver.routes, ...razorpay.routes } });

	const served = await get<Doc>("/api/openapi.json");
	expect(served.status, served.text).toBe(200);
	doc = served.json;
	secured = securedOperations(doc);

	const t = await seedTenant({ plan: "pro", members: { admin: { role: "org:admin", activeOrg: true } } });
	orgId = t.orgId;
	admin = t.admin.token;
	operator = await signToken({ userId: TEST_OPERATOR, expiresIn: 3600 });

	const post = async <T>(path: string, body: unknown) => {
		const res = await call<T>("POST", path, { token: admin, body });
		expect(res.status, `POST ${path}: ${res.text}`).toBe(201);
		return res.json;
	};
	const category = await post<{ id: string }>(`${t.base}/categories`, { name: "Tea", slug: "tea" });
	const product = await post<{ id: string }>(`${t.base}/products`, {
		name: "Chai",
		sku: uid("SKU"),
		priceMinor: 25000,
		currency: "INR",
		status: "active",
		stock: 10,
	});
	const order = await post<{ id: string }>(`${t.base}/orders`, { items: [{ productId: product.id, quantity: 1 }] });
	const variant = await post<{ id: string }>(`${t.base}/products/${product.id}/variants`, { name: "500g", sku: uid("VAR"), stock: 1 });
	const endpoint = await post<{ id: string }>(`${t.base}/webhooks`, {
		url: "https://hooks.tenant.example.com/in",
		eventTypes: ["order.created"],
	});
	const payment = await post<{ paymentOrderId: string }>("/api/payments/orders", { amount: 49900, currency: "INR" });
	// A key with every permission the admin holds outside Clerk's own (system) ones.
	const me = (await get<Body<"GET /api/me">>("/api/me", admin)).json;
	const permissions = (me.organization?.permissions ?? []).filter((p) => !p.includes(":sys_"));
	const key = await post<{ id: string; key: string }>(`${t.base}/api-keys`, { name: "every-permission", permissions });
	apiKey = key.key;
	real = {
		categoryId: category.id,
		productId: product.id,
		variantId: variant.id,
		orderId: order.id,
		endpointId: endpoint.id,
		id: payment.paymentOrderId,
		keyId: key.id,
	};
	vi.restoreAllMocks();
});

describe("session-secured operations of the served document", () => {
	it("are every operation but the two health checks and the three provider webhooks, tenant-data routes included", () => {
		const all = Object.values(doc.paths).reduce((n, ops) => n + Object.keys(ops).length, 0);
		expect(sessionOps().length).toBe(all - 5);
		for (const o of sessionOps()) expect(o.schemes, o.where).toEqual(SESSION_SCHEMES);
		// Every scheme the document uses is tried by this file.
		const used = new Set(secured.flatMap((o) => o.schemes));
		expect([...used].sort()).toEqual([...SESSION_SCHEMES, ...WEBHOOK_SCHEMES].sort());
		expect(Object.keys(doc.components.securitySchemes).sort()).toEqual([...used].sort());
		// The tenant-data routes (forwarded to the tenant's store after the token verified) are among them.
		const store = sessionOps().filter(isStoreRoute);
		expect(new Set(store.map((o) => o.path.split("/")[4]))).toEqual(STORE_SEGMENTS);
		expect(store.length).toBeGreaterThanOrEqual(25);
	});

	it("the tenant's data the reads address lives in its store (so a 200 there was served by the store)", async () => {
		const row = await env.DB.prepare("SELECT store_state AS state FROM organizations WHERE id = ?")
			.bind(orgId)
			.first<{ state: string | null }>();
		expect(row?.state ?? "store").toBe("store");
		expect(await storeSql(orgId, "SELECT id FROM categories")).toEqual([{ id: real.categoryId }]);
		expect(await storeSql(orgId, "SELECT id FROM webhook_endpoints")).toEqual([{ id: real.endpointId }]);
	});

	it("bearer: the session token in Authorization works on every one", { timeout: 60_000 }, async () => {
		const failures = await each(sessionOps(), async (o) =>
			authenticated(o, await send(o, { authorization: `Bearer ${tokenFor(o)}` })),
		);
		expect(failures).toEqual([]);
	});

	const csrf = "session: the __session cookie works on every one, a write only from an allowed Origin (CSRF rule: 403 otherwise)";
	it(csrf, { timeout: 60_000 }, async () => {
		const failures = await each(sessionOps(), async (o) => {
			const ok = await send(o, { ...cookie(tokenFor(o)), ...allowedOrigin(o) });
			const bad = authenticated(o, ok);
			if (bad) return `cookie: ${bad}`;
			// The same answer as with the Bearer header: the cookie reaches the same principal.
			const bearer = await send(o, { authorization: `Bearer ${tokenFor(o)}` });
			if (bearer.status !== ok.status) return `cookie ${ok.status} but Bearer ${bearer.status}`;
			if (SAFE.has(o.method)) return null;
			for (const origin of [undefined, "https://evil.example", "null"]) {
				const res = await send(o, { ...cookie(tokenFor(o)), ...(origin ? { origin } : {}) });
				if (res.status !== 403 || !res.json?.detail?.includes("origin")) {
					return `cookie write from Origin ${origin ?? "(none)"}: ${show(res)}`;
				}
			}
			return null;
		});
		expect(failures).toEqual([]);
	});

	const keys = "bearer: a tenant API key works on its organization's /api/orgs/{orgId}/… operations and /api/me, 403 on the others";
	it(keys, { timeout: 60_000 }, async () => {
		const failures = await each(sessionOps(), async (o) => {
			const res = await send(o, { authorization: `Bearer ${apiKey}` });
			if (res.status === 401) return show(res);
			const outOfScope = res.status === 403 && res.json?.detail?.startsWith("API keys are accepted only");
			if (isKeyRoute(o)) return outOfScope ? show(res) : null;
			return outOfScope ? null : `outside the key's routes: ${show(res)}`;
		});
		expect(failures).toEqual([]);
		expect(sessionOps().filter(isKeyRoute).length).toBeGreaterThanOrEqual(45);
	});

	it.each(Object.keys(UNDECLARED))(
		"undeclared: the same valid session token (and API key) %s gets 401 on every one",
		{ timeout: 90_000 },
		async (kind) => {
			const failures = await each(sessionOps(), async (o) => {
				const withKey = isKeyRoute(o) ? UNDECLARED[kind]!(apiKey).map(([how, ...rest]) => [`API key ${how}`, ...rest] as const) : [];
				const attempts = [...UNDECLARED[kind]!(tokenFor(o)), ...withKey];
				const bad: string[] = [];
				for (const [how, headers, query] of attempts) {
					// From an allowed Origin: a refusal can only be about the credential.
					const why = refused(await send(o, { ...headers, ...allowedOrigin(o) }, query));
					if (why) bad.push(`${how}: ${why}`);
				}
				return bad.length > 0 ? bad.join("; ") : null;
			});
			expect(failures).toEqual([]);
		},
	);

	const keyCookie = "undeclared: an API key in the __session cookie (keys are only read from Authorization) gets 401 on every one";
	it(keyCookie, { timeout: 60_000 }, async () => {
		const failures = await each(sessionOps(), async (o) => refused(await send(o, { ...cookie(apiKey), ...allowedOrigin(o) })));
		expect(failures).toEqual([]);
	});
});

describe("provider webhooks: each declared signature scheme works, nothing else does", () => {
	const hex = (buf: ArrayBuffer) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
	async function hmacHex(secret: string, data: string) {
		const raw = new TextEncoder().encode(secret);
		const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
		return hex(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(data)));
	}
	const now = () => Math.floor(Date.now() / 1000);
	const clerkBody = () => JSON.stringify(envelope("user.created", userData(uid("user"))));
	const razorpayBody = () =>
		JSON.stringify({ event: "payment.captured", payload: { payment: { entity: { id: uid("pay") } } }, created_at: now() });
	const stripeBody = () =>
		JSON.stringify({ id: `evt_${uid("s").slice(-16)}`, object: "event", type: "invoice.paid", created: now(), data: { object: {} } });

	/** For each scheme: a body of its provider and the headers that present the scheme's signature for it. */
	const SIGNED: Record<string, { path: string; body: () => string; sign: (raw: string) => Promise<Record<string, string>> }> = {
		clerkSvix: { path: "/api/webhooks/clerk", body: clerkBody, sign: async (raw) => svixHeaders(raw) },
		clerkStandardWebhooks: {
			path: "/api/webhooks/clerk",
			body: clerkBody,
			sign: async (raw) => {
				const h = svixHeaders(raw);
				return { "webhook-id": h["svix-id"], "webhook-timestamp": h["svix-timestamp"], "webhook-signature": h["svix-signature"] };
			},
		},
		razorpaySignature: {
			path: "/api/webhooks/razorpay",
			body: razorpayBody,
			sign: async (raw) => ({ "x-razorpay-signature": await hmacHex(TEST_RAZORPAY.webhookSecret, raw) }),
		},
		stripeSignature: {
			path: "/api/webhooks/stripe",
			body: stripeBody,
			sign: async (raw) => {
				const t = now();
				return { "stripe-signature": `t=${t},v1=${await hmacHex(TEST_STRIPE.webhookSecret, `${t}.${raw}`)}` };
			},
		},
	};
	const SECRETS: Record<string, string> = {
		"/api/webhooks/clerk": TEST_WEBHOOK_SECRET,
		"/api/webhooks/razorpay": TEST_RAZORPAY.webhookSecret,
		"/api/webhooks/stripe": TEST_STRIPE.webhookSecret,
	};
	const webhookOps = () => secured.filter((o) => o.schemes.every((s) => WEBHOOK_SCHEMES.includes(s)));
	const post = (path: string, raw: string, headers: Record<string, string>, query = "") =>
		call<Problem>("POST", query ? `${path}?${query}` : path, {
			body: raw,
			headers: { "content-type": "application/json", ...headers },
			settle: true,
		});

	it("the document's webhook operations are the three providers, each with its own schemes", () => {
		expect(Object.fromEntries(webhookOps().map((o) => [o.where, o.schemes]))).toEqual({
			"POST /api/webhooks/clerk": ["clerkSvix", "clerkStandardWebhooks"],
			"POST /api/webhooks/razorpay": ["razorpaySignature"],
			"POST /api/webhooks/stripe": ["stripeSignature"],
		});
	});

	it("each declared scheme: a correctly signed delivery is queued (202)", async () => {
		const queued = vi.spyOn(env.WEBHOOK_QUEUE, "send").mockResolvedValue(undefined as never);
		const failures = await each(webhookOps(), async (o) => {
			for (const scheme of o.schemes) {
				const s = SIGNED[scheme]!;
				expect(s.path, scheme).toBe(o.path);
				const raw = s.body();
				const res = await post(o.path, raw, await s.sign(raw));
				if (res.status !== 202) return `${scheme}: ${show(res)}`;
			}
			return null;
		});
		expect(failures).toEqual([]);
		expect(queued).toHaveBeenCalledTimes(4);
	});

	const others =
		"undeclared: a session token, the cookie, an API key, Basic with the secret, the signature in the query or in another " +
		"provider's header get 401, nothing queued";
	it(others, { timeout: 60_000 }, async () => {
		const queued = vi.spyOn(env.WEBHOOK_QUEUE, "send").mockResolvedValue(undefined as never);
		const failures = await each(webhookOps(), async (o) => {
			const own = SIGNED[o.schemes[0]!]!;
			const raw = own.body();
			const signature = Object.values(await own.sign(raw)).join(",");
			const others = await Promise.all(
				Object.entries(SIGNED)
					.filter(([, s]) => s.path !== o.path)
					.map(async ([scheme, s]) => [`${scheme} header`, await s.sign(raw), ""] as [string, Record<string, string>, string]),
			);
			const attempts: [string, Record<string, string>, string][] = [
				["nothing", {}, ""],
				["Bearer session token", { authorization: `Bearer ${admin}` }, ""],
				["__session cookie", cookie(admin), ""],
				["Bearer API key", { authorization: `Bearer ${apiKey}` }, ""],
				["Basic with the signing secret", { authorization: `Basic ${btoa(`:${SECRETS[o.path]}`)}` }, ""],
				["signature in the query", {}, `signature=${encodeURIComponent(signature)}`],
				["X-Signature header", { "x-signature": signature }, ""],
				...others,
			];
			const bad: string[] = [];
			for (const [how, headers, query] of attempts) {
				const why = refused(await post(o.path, raw, headers, query));
				if (why) bad.push(`${how}: ${why}`);
			}
			return bad.length > 0 ? bad.join("; ") : null;
		});
		expect(failures).toEqual([]);
		expect(queued).not.toHaveBeenCalled();
	});
});
