import { createRemoteJWKSet, errors, importJWK, importSPKI, type JWTVerifyGetKey, jwtVerify } from "jose";
import type { Config } from "../env";
import { EnvError } from "../env";
import { TtlCache } from "../lib/ttl-cache";
import { type AuthContext, normalizeClaims } from "./claims";

export const ALLOWED_ALGORITHMS = ["RS256", "RS384", "RS512"] as const;
export const MAX_TOKEN_BYTES = 8 * 1024;
export const CLOCK_SKEW_SECONDS = 5;
/** A refetch of the JWKS for an unknown kid happens at most this often. */
export const JWKS_COOLDOWN_MS = 60_000;
const JWKS_MAX_AGE_MS = 10 * 60_000;
const VERIFIED_CACHE_ENTRIES = 5_000;

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** Why a token was refused. Logged, never sent to the client. */
export class TokenError extends Error {
	constructor(
		readonly reason: string,
		readonly upstream = false,
	) {
		super(reason);
	}
}

export interface VerifierOptions {
	issuer: string;
	authorizedParties: string[];
	jwksUrl?: string;
	jwtKey?: string;
	devJwk?: string;
}

/**
 * Verifies Clerk session tokens: RS256/384/512 only, `iss`, required `exp` and `sub`, `nbf`/`iat` with
 * 5 s skew (a future `iat` is refused), `azp` when authorized parties are configured, 8 KiB cap.
 * Key source: CLERK_JWT_KEY (no network), else CLERK_JWKS_URL, else the local development key.
 *
 * @example
 * const v = new TokenVerifier({ issuer, authorizedParties: [], jwksUrl });
 * const auth = await v.verify(token); // throws TokenError
 */
export class TokenVerifier {
	readonly keySource: "pem" | "jwks" | "dev";
	private readonly getKey: JWTVerifyGetKey;
	// Verified tokens until they expire: a signature is checked once per isolate per token.
	private readonly verified = new TtlCache<string, AuthContext>(VERIFIED_CACHE_ENTRIES);

	constructor(private readonly opts: VerifierOptions) {
		if (!opts.issuer) throw new EnvError(["CLERK_ISSUER: required to verify session tokens"]);
		if (opts.jwtKey) {
			this.keySource = "pem";
			this.getKey = importedKeyGetter((alg) => importSPKI(opts.jwtKey as string, alg));
		} else if (opts.jwksUrl) {
			this.keySource = "jwks";
			const jwks = createRemoteJWKSet(new URL(opts.jwksUrl), {
				cooldownDuration: JWKS_COOLDOWN_MS,
				cacheMaxAge: JWKS_MAX_AGE_MS,
				timeoutDuration: 5_000,
			});
			this.getKey = (header, token) => jwks(header, token);
		} else if (opts.devJwk) {
			this.keySource = "dev";
			let jwk: Record<string, unknown>;
			try {
				jwk = JSON.parse(opts.devJwk);
			} catch {
				throw new EnvError(["DEV_JWT_PUBLIC_JWK: not valid JSON"]);
			}
			this.getKey = importedKeyGetter((alg) => importJWK(jwk, alg) as Promise<CryptoKey>);
		} else {
			throw new EnvError(["CLERK_JWKS_URL or CLERK_JWT_KEY: one is required to verify session tokens"]);
		}
	}

	async verify(token: string, now = Date.now()): Promise<AuthContext> {
		if (token.length > MAX_TOKEN_BYTES) throw new TokenError("token too large");
		if (!JWT_SHAPE.test(token)) throw new TokenError("malformed token");
		const cached = this.verified.get(token, now);
		if (cached) return cached;

		let payload: Awaited<ReturnType<typeof jwtVerify>>["payload"];
		try {
			({ payload } = await jwtVerify(token, this.getKey, {
				issuer: this.opts.issuer,
				algorithms: [...ALLOWED_ALGORITHMS],
				requiredClaims: ["exp", "sub"],
				clockTolerance: CLOCK_SKEW_SECONDS,
				currentDate: new Date(now),
			}));
		} catch (err) {
			throw toTokenError(err);
		}
		const nowSec = Math.floor(now / 1000);
		if (typeof payload.iat === "number" && payload.iat > nowSec + CLOCK_SKEW_SECONDS) {
			throw new TokenError("iat in the future");
		}
		if (typeof payload.sub !== "string" || payload.sub.length === 0) throw new TokenError("missing sub");
		if (this.opts.authorizedParties.length > 0) {
			const azp = (payload as { azp?: unknown }).azp;
			if (typeof azp !== "string" || !this.opts.authorizedParties.includes(azp)) {
				throw new TokenError("azp not authorized");
			}
		}
		const auth = normalizeClaims(payload);
		this.verified.set(token, auth, (auth.expiresAt + CLOCK_SKEW_SECONDS) * 1000 - now, now);
		return auth;
	}
}

function importedKeyGetter(load: (alg: string) => Promise<CryptoKey>): JWTVerifyGetKey {
	// Imported CryptoKeys per algorithm: importing is the costly part, the key never changes.
	const keys = new Map<string, Promise<CryptoKey>>();
	return (header) => {
		const alg = header.alg ?? "";
		let key = keys.get(alg);
		if (!key) {
			key = load(alg);
			key.catch(() => keys.delete(alg));
			keys.set(alg, key);
		}
		return key;
	};
}

function toTokenError(err: unknown): TokenError {
	if (err instanceof TokenError) return err;
	if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) {
		return new TokenError(err.code, true);
	}
	// A JWKS endpoint answering non-200 or non-JSON is the key source failing, not the caller.
	if (err instanceof errors.JOSEError && /JSON Web Key Set HTTP response/.test(err.message)) {
		return new TokenError("jwks unavailable", true);
	}
	if (err instanceof errors.JOSEError) return new TokenError(err.code);
	// Anything else (fetch failed, key could not be imported) is on our side of the exchange.
	return new TokenError(err instanceof Error ? err.message : "verification failed", true);
}

// One verifier per configuration, kept for the isolate's lifetime (holds the JWKS and token caches).
const verifiers = new Map<string, TokenVerifier>();

export function verifierFor(config: Config): TokenVerifier {
	const opts: VerifierOptions = {
		issuer: config.CLERK_ISSUER ?? "",
		authorizedParties: config.CLERK_AUTHORIZED_PARTIES,
		jwksUrl: config.CLERK_JWKS_URL,
		jwtKey: config.CLERK_JWT_KEY,
		// The development key is never used when a real Clerk key source is configured.
		devJwk: config.CLERK_JWKS_URL || config.CLERK_JWT_KEY ? undefined : config.DEV_JWT_PUBLIC_JWK,
	};
	const fingerprint = JSON.stringify(opts);
	let v = verifiers.get(fingerprint);
	if (!v) {
		v = new TokenVerifier(opts);
		verifiers.set(fingerprint, v);
	}
	return v;
}
