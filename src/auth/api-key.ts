import { sha256Hex } from "../lib/crypto";
import { TtlCache } from "../lib/ttl-cache";

// Tenant API keys as credentials (issue 12). The key format, its hash, and the isolate cache in front
// of the D1 lookup by hash. CRUD and the D1 side live in services/api-keys.ts.
//
// Format: `sk_live_` + the base62 encoding (0-9, A-Z, a-z; big-endian, left-padded with "0" to 43
// characters) of 32 random bytes: 51 characters, /^sk_live_[0-9A-Za-z]{43}$/. The fixed prefix names
// the kind, so secret scanners can match it; a Bearer value starting with `sk_live_` is always taken
// as an API key, never as a session token.
//
// Revocation delay: a key's row is cached per isolate (by hash) for at most API_KEY_CACHE_TTL_MS (5 s);
// a revocation, permission change or rotation written to D1 is therefore seen by every isolate within
// 5 s, and at once by the isolate that made it (it clears its cache). Expiry (the key's expiresAt and
// the end of a rotation's grace period) is checked against the clock on every request.

export const API_KEY_PREFIX = "sk_live_";
const RANDOM_BYTES = 32;
/** Characters of base62 that 32 bytes need: ceil(256 / log2(62)) = 43. */
const BODY_LENGTH = 43;
const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
export const API_KEY_PATTERN = /^sk_live_[0-9A-Za-z]{43}$/;
/** A D1 row seen for a hash serves requests for at most this long in one isolate. */
export const API_KEY_CACHE_TTL_MS = 5_000;
/** After a rotation, the replaced secret keeps working this long. */
export const ROTATION_GRACE_MS = 60_000;

/** A new secret: `sk_live_` + base62 of 32 bytes from the platform CSPRNG. */
export function generateApiKey(): string {
	const bytes = crypto.getRandomValues(new Uint8Array(RANDOM_BYTES));
	let n = 0n;
	for (const b of bytes) n = (n << 8n) | BigInt(b);
	let body = "";
	while (n > 0n) {
		body = ALPHABET[Number(n % 62n)] + body;
		n /= 62n;
	}
	return API_KEY_PREFIX + body.padStart(BODY_LENGTH, "0");
}

export const isApiKeyFormat = (token: string): boolean => API_KEY_PATTERN.test(token);

/** What is stored and looked up: the SHA-256 (hex) of the whole secret. */
export const hashApiKey = (secret: string): Promise<string> => sha256Hex(secret);

/** A key's D1 row as the verifier needs it (the previous hash only during a rotation's grace period). */
export interface StoredApiKey {
	id: string;
	organizationId: string;
	name: string;
	last4: string;
	hash: string;
	previousHash: string | null;
	previousExpiresAt: number | null;
	permissions: string[];
	rateLimitPerMinute: number | null;
	expiresAt: number | null;
	revokedAt: number | null;
}

/** A verified key: the principal `apikey:<id>` of one organization, with the key's own permissions. */
export interface ApiKeyPrincipal {
	id: string;
	organizationId: string;
	name: string;
	/** The current secret's last 4 characters. */
	last4: string;
	permissions: string[];
	rateLimitPerMinute: number | null;
	expiresAt: number | null;
}

/** The principal id a key acts as (audit actor, rate-limit and idempotency scopes): `apikey:<id>`. */
export const apiKeyActor = (id: string) => `apikey:${id}`;

/** Why a key was refused. Logged, never sent to the client. */
export class ApiKeyError extends Error {}

/** Reads the key whose current or previous hash is `hash` (null: none). One D1 query in production. */
export type ApiKeySource = (hash: string) => Promise<StoredApiKey | null>;

/** The isolate's clock for key checks; tests move it with setApiKeyClock instead of sleeping. */
let clock: () => number = () => Date.now();

/** Test hook: key checks (cache expiry, key expiry, grace periods, last-used writes) read the time from `now`. */
export function setApiKeyClock(now: () => number): void {
	clock = now;
}

export const apiKeyNow = (): number => clock();

/**
 * Verifies API keys against a cache of D1 rows by hash (module comment). Unknown hashes are cached as
 * misses too, for the same 5 s, so a repeated wrong key costs no D1 query.
 * @example const principal = await verifier.verify(secret, (hash) => findApiKeyByHash(db, hash));
 */
export class ApiKeyVerifier {
	private readonly rows = new TtlCache<string, StoredApiKey | null>(10_000);

	async verify(secret: string, read: ApiKeySource, now = clock()): Promise<ApiKeyPrincipal> {
		if (!isApiKeyFormat(secret)) throw new ApiKeyError("malformed api key");
		const hash = await hashApiKey(secret);
		let row = this.rows.get(hash, now);
		if (row === undefined) {
			row = await read(hash);
			this.rows.set(hash, row, API_KEY_CACHE_TTL_MS, now);
		}
		if (!row) throw new ApiKeyError("unknown api key");
		if (row.revokedAt !== null) throw new ApiKeyError("api key revoked");
		if (row.expiresAt !== null && row.expiresAt <= now) throw new ApiKeyError("api key expired");
		if (row.hash !== hash && (row.previousHash !== hash || row.previousExpiresAt === null || row.previousExpiresAt <= now)) {
			throw new ApiKeyError("rotated api key past its grace period");
		}
		return {
			id: row.id,
			organizationId: row.organizationId,
			name: row.name,
			last4: row.last4,
			permissions: row.permissions,
			rateLimitPerMinute: row.rateLimitPerMinute,
			expiresAt: row.expiresAt,
		};
	}

	/** Forgets every cached row: this isolate changed a key and sees the change at once. */
	clear(): void {
		this.rows.clear();
	}
}
