import { createLocalJWKSet, errors, type FlattenedJWSInput, type JSONWebKeySet, type JWSHeaderParameters } from "jose";

/** A refetch of the JWKS for an unknown kid starts at most this often per isolate. */
export const JWKS_COOLDOWN_MS = 60_000;
/** A JWKS older than this is fetched again before use (served stale if that fetch fails). */
const JWKS_MAX_AGE_MS = 10 * 60_000;
const FETCH_TIMEOUT_MS = 5_000;
/** After a failed fetch, requests with no JWKS at all answer 503 for this long instead of fetching again. */
const FAILURE_BACKOFF_MS = 5_000;
/** How often a request waiting for another request's load looks at the result. */
const POLL_MS = 20;
const MAX_POLLS = Math.ceil((FETCH_TIMEOUT_MS + 1_000) / POLL_MS);
/** Set on the copy stored in the Cache API: when the fetch behind it started (ms). */
const FETCHED_AT_HEADER = "x-jwks-fetched-at";

/** The JWKS endpoint failed (network, timeout, status, body): the key source, not the caller (503). */
export class JwksUnavailable extends Error {
	override name = "JwksUnavailable";
}

interface Loaded {
	select: ReturnType<typeof createLocalJWKSet>;
	/** When the fetch that produced these keys started (ms), in whichever isolate ran it. */
	fetchedAt: number;
}

/**
 * The Clerk JWKS as one isolate sees it. Built for the Workers rule that a request cannot await I/O
 * started by another request, so no in-flight promise is shared:
 * - One load at a time per isolate: the request that finds no usable JWKS claims the load
 *   synchronously (`loadingSince`) before its first await; concurrent requests poll this object's
 *   state on their own timers until the load ends, then use its result (or answer 503).
 * - A load first reads the copy other isolates stored in the Cache API (caches.default, keyed by the
 *   JWKS URL), and fetches from the network only when that copy is missing or too old; a fetched
 *   JWKS is written back there. Cold isolates of a colo thus share one fetch.
 * - An unknown kid starts a refetch at most once per JWKS_COOLDOWN_MS, measured from when the last
 *   fetch STARTED (or from when the copy in use was fetched); other unknown kids in that window are
 *   refused without any I/O. A Cache API copy fetched within the cooldown is used instead of fetching.
 *
 * @example
 * const jwks = new RemoteJwks("https://clerk.example.com/.well-known/jwks.json");
 * await jwtVerify(token, (header, token) => jwks.getKey(header, token), options);
 */
export class RemoteJwks {
	private loaded: Loaded | null = null;
	/** When this isolate last started a network fetch (the cooldown anchor). */
	private fetchStartedAt = Number.NEGATIVE_INFINITY;
	private lastFailureAt = Number.NEGATIVE_INFINITY;
	/** Set while a request of this isolate is loading (cache lookup + fetch); others wait for it. */
	private loadingSince: number | null = null;

	constructor(private readonly url: string) {}

	async getKey(header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> {
		const now = Date.now();
		if (!this.loaded || now - this.loaded.fetchedAt >= JWKS_MAX_AGE_MS) await this.load(now, "expired");
		const current = this.loaded;
		if (!current) throw new JwksUnavailable("jwks unavailable");
		try {
			return await current.select(header, token);
		} catch (err) {
			if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
			// Clerk may have rotated its keys: refetch, within the cooldown.
			await this.load(Date.now(), "unknown-kid");
			if (this.loaded === current) throw err;
			return (this.loaded as Loaded).select(header, token);
		}
	}

	private async load(now: number, reason: "expired" | "unknown-kid"): Promise<void> {
		if (this.loadingSince !== null && now - this.loadingSince < FETCH_TIMEOUT_MS + 1_000) {
			// Keys past their age still serve while another request of this isolate renews them.
			if (reason === "expired" && this.loaded) return;
			await this.waitForLoad();
			return;
		}
		if (reason === "unknown-kid" && now - this.lastRefresh() < JWKS_COOLDOWN_MS) return;
		if (reason === "expired" && !this.loaded && now - this.lastFailureAt < FAILURE_BACKOFF_MS) return;
		// Claimed before the first await: requests arriving meanwhile wait instead of loading too.
		this.loadingSince = now;
		try {
			const cached = await this.fromCache();
			const maxAge = reason === "unknown-kid" ? JWKS_COOLDOWN_MS : JWKS_MAX_AGE_MS;
			if (cached && now - cached.fetchedAt < maxAge && cached.fetchedAt > (this.loaded?.fetchedAt ?? Number.NEGATIVE_INFINITY)) {
				this.adopt(cached.jwks, cached.fetchedAt);
				return;
			}
			this.fetchStartedAt = now;
			let jwks: JSONWebKeySet;
			try {
				jwks = await this.fetchJwks();
			} catch (err) {
				this.lastFailureAt = Date.now();
				// A JWKS already held keeps working (served stale); with none, the caller gets a 503.
				if (!this.loaded || reason === "unknown-kid") throw err;
				return;
			}
			this.adopt(jwks, now);
			this.loadingSince = null;
			await this.toCache(jwks, now);
		} finally {
			this.loadingSince = null;
		}
	}

	/** The newest of: this isolate's last fetch start, the fetch time of the keys in use. */
	private lastRefresh(): number {
		return Math.max(this.fetchStartedAt, this.loaded?.fetchedAt ?? Number.NEGATIVE_INFINITY);
	}

	private adopt(jwks: JSONWebKeySet, fetchedAt: number): void {
		this.loaded = { select: createLocalJWKSet(jwks), fetchedAt };
	}

	/** Polls (own timers, no shared promise) until the load in flight ends or could no longer succeed. */
	private async waitForLoad(): Promise<void> {
		const since = this.loadingSince;
		for (let i = 0; i < MAX_POLLS && this.loadingSince === since; i++) {
			await new Promise((resolve) => setTimeout(resolve, POLL_MS));
		}
	}

	private async fetchJwks(): Promise<JSONWebKeySet> {
		let res: Response;
		try {
			res = await fetch(this.url, {
				headers: { accept: "application/json" },
				redirect: "manual",
				signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
			});
		} catch (err) {
			throw new JwksUnavailable(`jwks fetch failed: ${err instanceof Error ? err.name : "error"}`);
		}
		if (res.status !== 200) {
			await res.body?.cancel();
			throw new JwksUnavailable(`jwks endpoint answered ${res.status}`);
		}
		const body = await res.json().catch(() => null);
		if (!isJwks(body)) throw new JwksUnavailable("jwks endpoint answered no key set");
		return body;
	}

	private async fromCache(): Promise<{ jwks: JSONWebKeySet; fetchedAt: number } | null> {
		try {
			const hit = await caches.default.match(this.url);
			if (!hit) return null;
			const fetchedAt = Number(hit.headers.get(FETCHED_AT_HEADER));
			const jwks = await hit.json();
			return Number.isFinite(fetchedAt) && isJwks(jwks) ? { jwks, fetchedAt } : null;
		} catch {
			// No Cache API here (e.g. a workers.dev route): this isolate fetches for itself.
			return null;
		}
	}

	private async toCache(jwks: JSONWebKeySet, fetchedAt: number): Promise<void> {
		const copy = new Response(JSON.stringify(jwks), {
			headers: {
				"content-type": "application/json",
				"cache-control": `max-age=${JWKS_MAX_AGE_MS / 1000}`,
				[FETCHED_AT_HEADER]: String(fetchedAt),
			},
		});
		try {
			await caches.default.put(this.url, copy);
		} catch {
			// Sharing is an optimisation: without it each isolate fetches for itself.
		}
	}
}

function isJwks(v: unknown): v is JSONWebKeySet {
	if (typeof v !== "object" || v === null) return false;
	const keys = (v as { keys?: unknown }).keys;
	return Array.isArray(keys) && keys.every((k) => typeof k === "object" && k !== null && !Array.isArray(k));
}
