import { decodeProtectedHeader, errors, importJWK, importSPKI, type JWTVerifyGetKey, jwtVerify } from "jose";
import type { Config } from "../env";
import { EnvError } from "../env";
import { TtlCache } from "../lib/ttl-cache";
import { type AuthContext, normalizeClaims } from "./claims";
import { JwksUnavailable, RemoteJwks } from "./jwks";

export const ALLOWED_ALGORITHMS = ["RS256", "RS384", "RS512"] as const;
export const MAX_TOKEN_BYTES = 8 * 1024;
export const CLOCK_SKEW_SECONDS = 5;
/**
 * The longest lifetime (exp - iat) a token may have. Clerk's session tokens live 60 s; JWT-template
 * tokens can be configured longer. Revoked sessions are held this long (services/sessions.ts).
 */
export const MAX_TOKEN_LIFETIME_SECONDS = 24 * 60 * 60;
/** RSA keys shorter than this are refused (configured: 500; published in the JWKS: 401). */
const MIN_RSA_BITS = 2048;
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
 * Verifies Clerk session tokens: RS256/384/512 only, `typ` absent or "JWT", `iss`, required `exp` and
 * `sub`, `nbf`/`iat` with 5 s skew (a future `iat` is refused), a lifetime of at most
 * MAX_TOKEN_LIFETIME_SECONDS, `azp` when authorized parties are configured, 8 KiB cap.
 * Key source: CLERK_JWT_KEY (no network), else CLERK_JWKS_URL (see RemoteJwks), else the local
 * development key. A configured key that is not an RSA public key of 2048+ bits is an EnvError
 * (500 BAD_ENVIRONMENT naming the variable) at the first verification.
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
			const pem = opts.jwtKey;
			this.getKey = importedKeyGetter("CLERK_JWT_KEY", (alg) => importSPKI(pem, alg));
		} else if (opts.jwksUrl) {
			this.keySource = "jwks";
			const jwks = new RemoteJwks(opts.jwksUrl);
			this.getKey = (header, token) => jwks.getKey(header, token);
		} else if (opts.devJwk) {
			this.keySource = "dev";
			let jwk: Record<string, unknown>;
			try {
				jwk = JSON.parse(opts.devJwk);
			} catch {
				throw new EnvError(["DEV_JWT_PUBLIC_JWK: not valid JSON"]);
			}
			this.getKey = importedKeyGetter("DEV_JWT_PUBLIC_JWK", (alg) => importJWK(jwk, alg) as Promise<CryptoKey>);
		} else {
			throw new EnvError(["CLERK_JWKS_URL or CLERK_JWT_KEY: one is required to verify session tokens"]);
		}
	}

	async verify(token: string, now = Date.now()): Promise<AuthContext> {
		if (token.length > MAX_TOKEN_BYTES) throw new TokenError("token too large");
		// Only tokens that passed every check below are cached, so a hit skips them all (the shape test
		// scans the whole token on every request otherwise).
		const cached = this.verified.get(token, now);
		if (cached) return cached;
		if (!JWT_SHAPE.test(token)) throw new TokenError("malformed token");
		checkType(token);

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
		const exp = payload.exp as number;
		if (exp - (typeof payload.iat === "number" ? payload.iat : nowSec) > MAX_TOKEN_LIFETIME_SECONDS) {
			throw new TokenError("lifetime too long");
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

/** `typ`, when present, must be "JWT" (any case): an access token (at+jwt) or other JWT kind is refused. */
function checkType(token: string): void {
	let typ: unknown;
	try {
		({ typ } = decodeProtectedHeader(token));
	} catch {
		throw new TokenError("malformed header");
	}
	if (typ !== undefined && (typeof typ !== "string" || typ.toLowerCase() !== "jwt")) throw new TokenError("typ is not JWT");
}

/**
 * Imported CryptoKeys of a configured key (`variable`), per algorithm: importing is the costly part,
 * the key never changes. A key that cannot serve as an RSA verification key of MIN_RSA_BITS is a
 * configuration error. jose calls this only for an allowed algorithm (RS256/384/512).
 */
function importedKeyGetter(variable: string, load: (alg: string) => Promise<CryptoKey>): JWTVerifyGetKey {
	const keys = new Map<string, Promise<CryptoKey>>();
	const usable = async (alg: string) => {
		const key = await load(alg).catch(() => {
			throw new EnvError([`${variable}: not an RSA public key`]);
		});
		const bits = (key.algorithm as { modulusLength?: number }).modulusLength ?? 0;
		if (bits < MIN_RSA_BITS) throw new EnvError([`${variable}: RSA key of ${bits} bits, ${MIN_RSA_BITS} required`]);
		return key;
	};
	return (header) => {
		const alg = header.alg ?? "";
		let key = keys.get(alg);
		if (!key) {
			key = usable(alg);
			key.catch(() => keys.delete(alg));
			keys.set(alg, key);
		}
		return key;
	};
}

/**
 * Only a failing JWKS endpoint is the key source's fault (503) and only an unusable configured key is
 * ours (EnvError, 500); everything else is the token's: a bad signature or claim, an unknown kid, or
 * a published key jose refuses to use (e.g. RSA under 2048 bits) is a 401.
 */
function toTokenError(err: unknown): Error {
	if (err instanceof TokenError || err instanceof EnvError) return err;
	if (err instanceof JwksUnavailable) return new TokenError(err.message, true);
	if (err instanceof errors.JOSEError) return new TokenError(err.code);
	return new TokenError(err instanceof Error ? err.message : "verification failed");
}

// One verifier per configuration, kept for the isolate's lifetime (holds the JWKS and token caches).
const verifiers = new Map<string, TokenVerifier>();
// The same, by configuration object (configState() parses an env once): no fingerprint per request.
const byConfig = new WeakMap<Config, TokenVerifier>();

export function verifierFor(config: Config): TokenVerifier {
	const known = byConfig.get(config);
	if (known) return known;
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
	byConfig.set(config, v);
	return v;
}
