import { describe, expect, it } from "vitest";
import { API_KEY_PATTERN, ApiKeyError, ApiKeyVerifier, generateApiKey, type StoredApiKey } from "../../src/auth/api-key";
import { sha256Hex } from "../../src/lib/crypto";

describe("API key format", () => {
	it("is sk_live_ + 43 base62 characters (32 random bytes), never repeated", () => {
		const keys = Array.from({ length: 500 }, () => generateApiKey());
		for (const k of keys) expect(k).toMatch(API_KEY_PATTERN);
		expect(new Set(keys).size).toBe(keys.length);
		// Every base62 digit shows up across 500 keys: the whole alphabet is used, not only hex.
		expect(new Set(keys.join("").slice(8).replaceAll("sk_live_", "")).size).toBe(62);
	});
});

describe("ApiKeyVerifier", () => {
	const row = async (secret: string, over: Partial<StoredApiKey> = {}): Promise<StoredApiKey> => ({
		id: "key_1",
		organizationId: "org_1",
		name: "k",
		last4: secret.slice(-4),
		hash: await sha256Hex(secret),
		previousHash: null,
		previousExpiresAt: null,
		permissions: ["org:products:read"],
		rateLimitPerMinute: null,
		expiresAt: null,
		revokedAt: null,
		...over,
	});

	it("reads D1 at most once per hash per 5 s, misses included", async () => {
		const secret = generateApiKey();
		const stored = await row(secret);
		let reads = 0;
		const read = async (hash: string) => {
			reads++;
			return hash === stored.hash ? stored : null;
		};
		const v = new ApiKeyVerifier();
		await v.verify(secret, read, 0);
		await v.verify(secret, read, 4_999);
		expect(reads).toBe(1);
		await v.verify(secret, read, 5_000);
		expect(reads).toBe(2);
		const wrong = generateApiKey();
		await expect(v.verify(wrong, read, 0)).rejects.toBeInstanceOf(ApiKeyError);
		await expect(v.verify(wrong, read, 1)).rejects.toBeInstanceOf(ApiKeyError);
		expect(reads).toBe(3);
		await expect(v.verify("sk_live_tooshort", read, 0)).rejects.toBeInstanceOf(ApiKeyError);
		expect(reads).toBe(3);
	});
});
