import { base64url, SignJWT } from "jose";
import { beforeEach, describe, expect, it, type MockInstance, vi } from "vitest";
import { seedMembership, seedOrg, seedUser, uid } from "../helpers/factories";
import { jwks, keys, publicPem, signToken } from "../helpers/jwt";
import { stubNetwork } from "../helpers/network";
import { type Body, call, callWithEnv, get, type TestResponse } from "../helpers/request";
import { seedTenant } from "../helpers/tenant";
import { TEST_ISSUER } from "../helpers/vars";

type Me = Body<"GET /api/me">;

let fetchSpy: MockInstance<typeof fetch>;
beforeEach(() => {
	fetchSpy = stubNetwork(vi);
});

function expectInvalid(res: TestResponse) {
	expect(res.status, res.text).toBe(401);
	expect(res.headers.get("www-authenticate")).toBe('Bearer error="invalid_token"');
	expect(res.headers.get("content-type")).toBe("application/problem+json");
	expect(res.json).toMatchObject({
		status: 401,
		title: "Invalid token",
		detail: expect.any(String),
		requestId: expect.any(String),
	});
	// Nothing about the key or the claims is echoed back.
	expect(res.text).not.toMatch(/kid|RS\d{3}|test-(primary|rotated|attacker)|issuer|azp|signature|nbf|iat/i);
}

const now = () => Math.floor(Date.now() / 1000);

describe("accepted tokens", () => {
	it.each(["v1", "v2"] as const)("%s token: GET /api/me shows the user and the active organization", async (format) => {
		const orgId = await seedOrg();
		const userId = await seedUser(uid("user"), { email: "ada@example.com", firstName: "Ada", lastName: "Lovelace" });
		await seedMembership(orgId, userId, "org:admin");
		const token = await signToken({ format, userId, orgId, role: "org:admin", permissions: ["org:reports:read"] });
		const res = await get<Me>("/api/me", token);
		expect(res.status, res.text).toBe(200);
		expect(res.json.user).toEqual({ id: userId, email: "ada@example.com", firstName: "Ada", lastName: "Lovelace" });
		expect(res.json.organization).toMatchObject({ id: orgId, slug: orgId.toLowerCase(), role: "org:admin" });
		expect(res.json.organization?.permissions).toEqual(expect.arrayContaining(["org:members:read", "org:reports:read"]));
	});

	it("legacy role keys (admin, basic_member) map to org:admin and org:member", async () => {
		const orgId = await seedOrg();
		const userId = await seedUser();
		const res = await get<Me>("/api/me", await signToken({ format: "v1", userId, orgId, role: "basic_member" }));
		expect(res.status, res.text).toBe(200);
		expect(res.json.organization?.role).toBe("org:member");
		const admin = await seedUser();
		const res2 = await get(
			`/api/orgs/${orgId}/admin-data`,
			await signToken({ format: "v1", userId: admin, orgId, role: "admin" }),
		);
		expect(res2.status, res2.text).toBe(200);
	});

	it("reads the __session cookie when there is no Authorization header", async () => {
		const token = await signToken({ userId: "user_cookie" });
		const res = await get<Me>("/api/me", undefined, { cookie: `other=1; __session=${token}` });
		expect(res.status, res.text).toBe(200);
		expect(res.json.user.id).toBe("user_cookie");
		expect(res.json.organization).toBeNull();
	});

	it("accepts RS384 as Clerk may sign with it", async () => {
		const res = await get<Me>("/api/me", await signToken({ key: "rs384", userId: "user_384" }));
		expect(res.status, res.text).toBe(200);
	});

	it("tolerates 5 s of clock skew on exp, nbf and iat", async () => {
		const t = now();
		const ok = await signToken({ issuedAt: t - 60, expiresIn: 57, notBefore: t + 3 });
		expect((await get<Me>("/api/me", ok)).status).toBe(200);
		const futureIat = await signToken({ issuedAt: t + 3, expiresIn: 60 });
		expect((await get<Me>("/api/me", futureIat)).status).toBe(200);
	});

	it("a pending session (sts) has no active organization", async () => {
		const orgId = await seedOrg();
		const res = await get<Me>("/api/me", await signToken({ orgId, role: "org:admin", sts: "pending" }));
		expect(res.status, res.text).toBe(200);
		expect(res.json.organization).toBeNull();
	});

	it("CLERK_JWT_KEY verifies without any network call", async () => {
		const pem = await publicPem("primary");
		const res = await callWithEnv<Me>({ CLERK_JWT_KEY: pem, CLERK_JWKS_URL: undefined }, "GET", "/api/me", {
			token: await signToken({ userId: "user_pem" }),
		});
		expect(res.status, res.text).toBe(200);
		expect(res.json.user.id).toBe("user_pem");
		expect(fetchSpy).not.toHaveBeenCalled();
		const wrong = await callWithEnv({ CLERK_JWT_KEY: pem, CLERK_JWKS_URL: undefined }, "GET", "/api/me", {
			token: await signToken({ key: "attacker", kid: keys.primary.kid }),
		});
		expectInvalid(wrong);
	});

	it("the local development key is used only when no Clerk key source is set", async () => {
		const devJwk = JSON.stringify(keys.rotated.publicJwk);
		const token = await signToken({ key: "rotated", userId: "user_dev" });
		const dev = await callWithEnv({ DEV_JWT_PUBLIC_JWK: devJwk, CLERK_JWKS_URL: undefined }, "GET", "/api/me", { token });
		expect(dev.status, dev.text).toBe(200);
		// With a JWKS URL configured the dev key is ignored: the token's kid is unknown there.
		const real = await callWithEnv({ DEV_JWT_PUBLIC_JWK: devJwk }, "GET", "/api/me", { token });
		expectInvalid(real);
	});
});

describe("rejected tokens", () => {
	it("no token: 401 with a bare Bearer challenge", async () => {
		const res = await get("/api/me");
		expect(res.status).toBe(401);
		expect(res.headers.get("www-authenticate")).toBe("Bearer");
		expect(res.json).toMatchObject({ status: 401, title: "Authentication required" });
	});

	const cases = (format: "v1" | "v2"): [string, () => Promise<string | Record<string, string>>][] => [
		[
			"expired beyond the skew",
			() => signToken({ format, orgId: "org_claimed", role: "org:admin", issuedAt: now() - 120, expiresIn: 110 }),
		],
		["without exp", () => signToken({ format, orgId: "org_claimed", role: "org:admin", expiresIn: null })],
		["nbf in the future", () => signToken({ format, orgId: "org_claimed", role: "org:admin", notBefore: now() + 30 })],
		["iat in the future", () => signToken({ format, orgId: "org_claimed", role: "org:admin", issuedAt: now() + 30 })],
		["wrong issuer", () => signToken({ format, orgId: "org_claimed", role: "org:admin", issuer: "https://evil.example" })],
		["azp not authorized", () => signToken({ format, orgId: "org_claimed", role: "org:admin", azp: "https://evil.example" })],
		["azp missing while parties are configured", () => signToken({ format, orgId: "org_claimed", role: "org:admin", azp: null })],
		["empty sub", () => signToken({ format, orgId: "org_claimed", role: "org:admin", userId: "" })],
		[
			"signed by another key under a known kid",
			() => signToken({ format, orgId: "org_claimed", role: "org:admin", key: "attacker", kid: keys.primary.kid }),
		],
		["unknown kid", () => signToken({ format, orgId: "org_claimed", role: "org:admin", key: "attacker" })],
		["over 8 KiB", () => signToken({ format, orgId: "org_claimed", role: "org:admin", extra: { pad: "x".repeat(9000) } })],
		[
			"two segments",
			async () => (await signToken({ format, orgId: "org_claimed", role: "org:admin" })).split(".").slice(0, 2).join("."),
		],
		[
			"tampered payload",
			async () => {
				const [h, , s] = (await signToken({ format, orgId: "org_claimed", role: "org:admin", userId: "user_a" })).split(".");
				const forged = base64url.encode(JSON.stringify({ sub: "user_admin", iss: TEST_ISSUER, exp: now() + 60 }));
				return `${h}.${forged}.${s}`;
			},
		],
		[
			"alg none",
			async () => {
				const h = base64url.encode(JSON.stringify({ alg: "none", typ: "JWT" }));
				const p = base64url.encode(JSON.stringify({ sub: "user_x", iss: TEST_ISSUER, exp: now() + 60 }));
				return `${h}.${p}.`;
			},
		],
		[
			"HS256 keyed with the public key (alg confusion)",
			async () => {
				const secret = new TextEncoder().encode(JSON.stringify(keys.primary.publicJwk));
				return new SignJWT({ sub: "user_x" })
					.setProtectedHeader({ alg: "HS256", kid: keys.primary.kid })
					.setIssuer(TEST_ISSUER)
					.setExpirationTime("1m")
					.sign(secret);
			},
		],
		[
			"whitespace inside the token",
			async () => {
				const t = await signToken({ format, orgId: "org_claimed", role: "org:admin" });
				return { authorization: `Bearer ${t.slice(0, 20)} ${t.slice(20)}` };
			},
		],
		["Basic scheme", async () => ({ authorization: "Basic dXNlcjpwYXNz" })],
		["Bearer with nothing", async () => ({ authorization: "Bearer " })],
	];

	it.each([...cases("v1").map((c) => [`v1: ${c[0]}`, c[1]] as const), ...cases("v2").map((c) => [`v2: ${c[0]}`, c[1]] as const)])(
		"%s",
		async (_name, make) => {
			const made = await make();
			const res = typeof made === "string" ? await get<Me>("/api/me", made) : await get<Me>("/api/me", undefined, made);
			expectInvalid(res);
		},
	);

	it("malformed cookie token is rejected the same way", async () => {
		expectInvalid(await get<Me>("/api/me", undefined, { cookie: "__session=not-a-jwt" }));
	});
});

describe("JWKS handling", () => {
	const url = (name: string) => `${TEST_ISSUER}/${name}/jwks.json`;

	it("refetches on an unknown kid at most once per 60 s", async () => {
		let served = jwks("primary");
		fetchSpy.mockRestore();
		fetchSpy = stubNetwork(vi, { jwks: () => served });
		const env = { CLERK_JWKS_URL: url(uid("rotation")) };
		expect((await callWithEnv(env, "GET", "/api/me", { token: await signToken() })).status).toBe(200);
		expect(fetchSpy).toHaveBeenCalledTimes(1);
		// Clerk rotates keys: the JWKS gains the new key, but the cooldown blocks an immediate second fetch.
		served = jwks("primary", "rotated");
		const rotated = await signToken({ key: "rotated" });
		expectInvalid(await callWithEnv(env, "GET", "/api/me", { token: rotated }));
		expectInvalid(await callWithEnv(env, "GET", "/api/me", { token: await signToken({ key: "attacker" }) }));
		expect(fetchSpy).toHaveBeenCalledTimes(1);
		// 61 s later one refetch picks up the rotated key.
		vi.useFakeTimers({ toFake: ["Date"] });
		vi.setSystemTime(Date.now() + 61_000);
		try {
			const later = await signToken({ key: "rotated" });
			expect((await callWithEnv(env, "GET", "/api/me", { token: later })).status).toBe(200);
			expect(fetchSpy).toHaveBeenCalledTimes(2);
		} finally {
			vi.useRealTimers();
		}
	});

	it("a failing JWKS endpoint answers 503, not 401", async () => {
		fetchSpy.mockRestore();
		fetchSpy = vi.spyOn(globalThis, "fetch").mockResolvedValue(new Response("down", { status: 500 }));
		const res = await callWithEnv({ CLERK_JWKS_URL: url(uid("down")) }, "GET", "/api/me", { token: await signToken() });
		expect(res.status, res.text).toBe(503);
		expect(res.json).toMatchObject({ status: 503 });
	});

	it("caches the verified token: the same token is not re-fetched or re-verified", async () => {
		const env = { CLERK_JWKS_URL: url(uid("cache")) };
		const token = await signToken();
		for (let i = 0; i < 5; i++) expect((await callWithEnv(env, "GET", "/api/me", { token })).status).toBe(200);
		expect(fetchSpy).toHaveBeenCalledTimes(1);
	});
});

describe("identity headers", () => {
	it("X-User-Id / X-Org-Id from the client change nothing", async () => {
		const t = await seedTenant({ members: { victim: "org:admin" } });
		const { orgId } = t;
		const victim = t.victim.id;
		const spoof = { "x-user-id": victim, "x-org-id": orgId, "x-clerk-user-id": victim, "x-organization-id": orgId };
		const anon = await get<Me>("/api/me", undefined, spoof);
		expect(anon.status).toBe(401);
		const outsider = await signToken({ userId: "user_outsider" });
		const me = await get<Me>("/api/me", outsider, spoof);
		expect(me.status).toBe(200);
		expect(me.json.user.id).toBe("user_outsider");
		expect(me.json.organization).toBeNull();
		const res = await call("GET", `/api/orgs/${orgId}/admin-data`, { token: outsider, headers: spoof });
		expect(res.status).toBe(403);
	});
});
