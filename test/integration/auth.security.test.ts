import { base64url, importJWK, type JWK, SignJWT } from "jose";
import { JWKS_COOLDOWN_MS } from "../../src/auth/jwks";
import { MAX_TOKEN_LIFETIME_SECONDS } from "../../src/auth/verifier";
import { beforeEach, describe, expect, it, type MockInstance, vi } from "vitest";
import { seedMembership, seedOrg, seedUser, uid } from "../helpers/factories";
import { jwks, keys, publicPem, signToken } from "../helpers/jwt";
import { stubNetwork } from "../helpers/network";
import { type Body, call, callWithEnv, get, type TestResponse } from "../helpers/request";
import { seedTenant } from "../helpers/tenant";
import { TEST_AZP, TEST_ISSUER } from "../helpers/vars";

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
		expect(res.json.user?.id).toBe("user_cookie");
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
		expect(res.json.user?.id).toBe("user_pem");
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
		expect(me.json.user?.id).toBe("user_outsider");
		expect(me.json.organization).toBeNull();
		const res = await call("GET", `/api/orgs/${orgId}/admin-data`, { token: outsider, headers: spoof });
		expect(res.status).toBe(403);
	});
});

describe("verification hardening (issue 12)", () => {
	const url = (name: string) => `${TEST_ISSUER}/${name}/jwks.json`;
	const GENERIC = "the credential is invalid or expired";

	async function signWithHeader(header: Record<string, unknown>, claims: Record<string, unknown> = {}) {
		const key = (await importJWK(keys.primary.privateJwk as JWK, "RS256")) as CryptoKey;
		return new SignJWT({ sid: uid("sess"), azp: TEST_AZP, ...claims })
			.setProtectedHeader({ alg: "RS256", kid: keys.primary.kid, ...header })
			.setIssuer(TEST_ISSUER)
			.setSubject("user_typ")
			.setIssuedAt()
			.setExpirationTime("1m")
			.sign(key);
	}

	/** The JWKS endpoint answers after `delayMs`; returns the number of JWKS fetches made. */
	function slowJwks(delayMs: number, serve: () => unknown = () => jwks("primary", "rs384")) {
		fetchSpy.mockRestore();
		fetchSpy = vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
			const req = new Request(input as RequestInfo, init);
			if (!req.url.startsWith(TEST_ISSUER)) return new Response("not stubbed", { status: 404 });
			await new Promise((resolve) => setTimeout(resolve, delayMs));
			return Response.json(serve());
		});
		return () => fetchSpy.mock.calls.length;
	}

	describe("typ", () => {
		it.each(["at+jwt", "AT+JWT", "application/at+jwt", "JWS", "application/jwt", 1])("typ %s is refused", async (typ) => {
			expectInvalid(await get<Me>("/api/me", await signWithHeader({ typ })));
		});

		it.each(["JWT", "jwt", "Jwt", undefined])("typ %s is accepted", async (typ) => {
			const res = await get<Me>("/api/me", await signWithHeader(typ === undefined ? {} : { typ }));
			expect(res.status, res.text).toBe(200);
		});
	});

	it(`a token living longer than ${MAX_TOKEN_LIFETIME_SECONDS} s is refused (revocations are held that long)`, async () => {
		expectInvalid(await get<Me>("/api/me", await signToken({ expiresIn: MAX_TOKEN_LIFETIME_SECONDS + 60 })));
		expect((await get<Me>("/api/me", await signToken({ expiresIn: MAX_TOKEN_LIFETIME_SECONDS }))).status).toBe(200);
	});

	describe("JWKS fetches under concurrency", () => {
		it("30 concurrent requests with random unknown kids against a slow JWKS: at most 1 fetch", async () => {
			const fetches = slowJwks(250);
			const env = { CLERK_JWKS_URL: url(uid("storm")) };
			const tokens = await Promise.all(Array.from({ length: 30 }, () => signToken({ key: "attacker", kid: uid("kid") })));
			const answers = await Promise.all(tokens.map((token) => callWithEnv(env, "GET", "/api/me", { token })));
			for (const res of answers) expectInvalid(res);
			expect(fetches()).toBeLessThanOrEqual(1);
		});

		it("once the cooldown has passed, 30 concurrent unknown kids start exactly one refetch", async () => {
			const fetches = slowJwks(250);
			const env = { CLERK_JWKS_URL: url(uid("storm-warm")) };
			expect((await callWithEnv(env, "GET", "/api/me", { token: await signToken() })).status).toBe(200);
			expect(fetches()).toBe(1);
			vi.useFakeTimers({ toFake: ["Date"] });
			vi.setSystemTime(Date.now() + JWKS_COOLDOWN_MS + 1_000);
			try {
				const tokens = await Promise.all(Array.from({ length: 30 }, () => signToken({ key: "attacker", kid: uid("kid") })));
				const answers = await Promise.all(tokens.map((token) => callWithEnv(env, "GET", "/api/me", { token })));
				for (const res of answers) expectInvalid(res);
				expect(fetches()).toBe(2);
				// The cooldown runs from when that refetch started: more unknown kids fetch nothing.
				expectInvalid(await callWithEnv(env, "GET", "/api/me", { token: await signToken({ key: "attacker", kid: uid("kid") }) }));
				expect(fetches()).toBe(2);
			} finally {
				vi.useRealTimers();
			}
		});

		it("cold start: 20 concurrent first requests share one fetch and all succeed", async () => {
			const fetches = slowJwks(250);
			const env = { CLERK_JWKS_URL: url(uid("cold")) };
			const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => signToken({ userId: `user_cold_${i}` })));
			const answers = await Promise.all(tokens.map((token) => callWithEnv<Me>(env, "GET", "/api/me", { token })));
			for (const res of answers) expect(res.status, res.text).toBe(200);
			expect(fetches()).toBe(1);
		});

		it("another isolate's verifier takes the JWKS from the Cache API instead of fetching it", async () => {
			const fetches = slowJwks(10);
			const jwksUrl = url(uid("shared"));
			const token = await signToken();
			expect((await callWithEnv({ CLERK_JWKS_URL: jwksUrl }, "GET", "/api/me", { token })).status).toBe(200);
			// Other authorized parties make another verifier: a fresh isolate-level JWKS state, same URL.
			const fresh = { CLERK_JWKS_URL: jwksUrl, CLERK_AUTHORIZED_PARTIES: TEST_AZP };
			expect((await callWithEnv(fresh, "GET", "/api/me", { token: await signToken({ key: "rs384" }) })).status).toBe(200);
			expect(fetches()).toBe(1);
		});

		it("a JWKS endpoint that keeps failing is asked again only after a back-off, answering 503 meanwhile", async () => {
			fetchSpy.mockRestore();
			fetchSpy = vi.spyOn(globalThis, "fetch").mockResolvedValue(new Response("down", { status: 502 }));
			const env = { CLERK_JWKS_URL: url(uid("down")) };
			for (let i = 0; i < 5; i++) {
				const res = await callWithEnv(env, "GET", "/api/me", { token: await signToken() });
				expect(res.status, res.text).toBe(503);
				expect(res.headers.get("retry-after")).toBe("5");
			}
			expect(fetchSpy).toHaveBeenCalledTimes(1);
		});
	});

	describe("unusable keys", () => {
		const pem = (der: ArrayBuffer) =>
			`-----BEGIN PUBLIC KEY-----\n${btoa(String.fromCharCode(...new Uint8Array(der)))
				.match(/.{1,64}/g)
				?.join("\n")}\n-----END PUBLIC KEY-----`;

		async function smallRsa() {
			const pair = (await crypto.subtle.generateKey(
				{ name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
				true,
				["sign", "verify"],
			)) as CryptoKeyPair;
			const kid = uid("small");
			const jwk = { ...((await crypto.subtle.exportKey("jwk", pair.publicKey)) as JWK), kid, alg: "RS256", use: "sig" };
			const spki = (await crypto.subtle.exportKey("spki", pair.publicKey)) as ArrayBuffer;
			// jose refuses to sign with a key under 2048 bits: sign by hand.
			const enc = (v: unknown) => base64url.encode(JSON.stringify(v));
			const input = `${enc({ alg: "RS256", typ: "JWT", kid })}.${enc({ sub: "user_small", iss: TEST_ISSUER, azp: TEST_AZP, iat: now(), exp: now() + 60 })}`;
			const sig = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", pair.privateKey, new TextEncoder().encode(input));
			return { jwk, pem: pem(spki), token: `${input}.${base64url.encode(new Uint8Array(sig))}` };
		}

		it("a token signed with an RSA key under 2048 bits published in the JWKS is a 401, not a 503", async () => {
			const small = await smallRsa();
			fetchSpy.mockRestore();
			fetchSpy = stubNetwork(vi, { jwks: () => ({ keys: [keys.primary.publicJwk, small.jwk] }) });
			expectInvalid(await callWithEnv({ CLERK_JWKS_URL: url(uid("small")) }, "GET", "/api/me", { token: small.token }));
		});

		it.each([
			["not a key at all", async () => "-----BEGIN PUBLIC KEY-----\nTm90IGEga2V5\n-----END PUBLIC KEY-----"],
			[
				"an EC key",
				async () => {
					const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
					return pem((await crypto.subtle.exportKey("spki", pair.publicKey)) as ArrayBuffer);
				},
			],
			["an RSA key of 1024 bits", async () => (await smallRsa()).pem],
		])("CLERK_JWT_KEY that is %s: 500 BAD_ENVIRONMENT naming CLERK_JWT_KEY", async (_name, make) => {
			const res = await callWithEnv({ CLERK_JWT_KEY: await make(), CLERK_JWKS_URL: undefined }, "GET", "/api/me", {
				token: await signToken(),
			});
			expect(res.status, res.text).toBe(500);
			expect(res.json).toMatchObject({ code: "BAD_ENVIRONMENT", detail: expect.stringContaining("CLERK_JWT_KEY") });
			expect(res.text).not.toContain("BEGIN PUBLIC KEY");
			expect(fetchSpy).not.toHaveBeenCalled();
		});
	});

	it("every 401 for a presented credential carries the same detail", async () => {
		const small = await (async () => {
			const pair = (await crypto.subtle.generateKey(
				{ name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
				true,
				["sign", "verify"],
			)) as CryptoKeyPair;
			return { ...((await crypto.subtle.exportKey("jwk", pair.publicKey)) as JWK), kid: "test-small", alg: "RS256" };
		})();
		const t = now();
		const answers: TestResponse[] = [
			await get("/api/me", undefined, { authorization: "Basic dXNlcjpwYXNz" }),
			await get("/api/me", undefined, { authorization: "Bearer a b" }),
			await get("/api/me", undefined, { cookie: "__session=not-a-jwt" }),
			await get("/api/me", "x".repeat(9000)),
			await get("/api/me", await signToken({ issuedAt: t - 120, expiresIn: 100 })),
			await get("/api/me", await signToken({ key: "attacker", kid: keys.primary.kid })),
			await get("/api/me", await signToken({ key: "attacker" })),
			await get("/api/me", await signToken({ issuer: "https://evil.example" })),
			await get("/api/me", await signToken({ azp: "https://evil.example" })),
			await get("/api/me", await signToken({ expiresIn: MAX_TOKEN_LIFETIME_SECONDS + 60 })),
			await get("/api/me", await signWithHeader({ typ: "at+jwt" })),
		];
		fetchSpy.mockRestore();
		fetchSpy = stubNetwork(vi, { jwks: () => ({ keys: [keys.primary.publicJwk, small] }) });
		const smallKeyToken = `${base64url.encode(JSON.stringify({ alg: "RS256", kid: "test-small" }))}.${base64url.encode(
			JSON.stringify({ sub: "u", iss: TEST_ISSUER, exp: t + 60 }),
		)}.${base64url.encode("sig")}`;
		answers.push(await callWithEnv({ CLERK_JWKS_URL: url(uid("detail")) }, "GET", "/api/me", { token: smallKeyToken }));
		for (const res of answers) expect(res.status, res.text).toBe(401);
		expect(new Set(answers.map((res) => (res.json as { detail: string }).detail))).toEqual(new Set([GENERIC]));
	});
});
