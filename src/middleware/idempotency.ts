import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { sha256Hex } from "../lib/crypto";
import { etag } from "../lib/etag";
import {
	claimIdempotencyKey,
	completeIdempotencyKey,
	type IdempotencyClaim,
	type IdempotentCommit,
	releaseIdempotencyKey,
} from "../services/idempotency";

const KEY_SHAPE = /^[\x21-\x7e]{1,255}$/;

/** The claim each request holds, for its handler (idempotentCommit). */
const claims = new WeakMap<Context, IdempotencyClaim>();

/**
 * Idempotency-Key for POSTs on tenant routes (after requireOrgMember). The first request with a key
 * claims it (a "pending" row, unique per organization and key, held for a short lease) and stores its
 * 2xx response; a retry with the same key and the same request gets that response again
 * (Idempotent-Replayed: true) and creates nothing. The same key with another body, path or user is a
 * 409, as is a retry while the first still holds its lease. A failed request (non-2xx) releases the key.
 *
 * Handlers whose work is one D1 batch store the response in that batch (idempotentCommit): when a
 * request dies between its work and its answer, the retry replays the stored answer; when it died
 * before its work committed, the retry (after the lease) runs the work. Other handlers' responses are
 * stored on completion.
 * @example middleware: [requireAuth(), requireOrgMember(), idempotency()]
 */
export function idempotency() {
	return createMiddleware<AppEnv>(async (c, next) => {
		const key = c.req.header("idempotency-key");
		if (key === undefined) return next();
		if (!KEY_SHAPE.test(key)) {
			throw new ApiError("VALIDATION_FAILED", "Idempotency-Key must be 1-255 visible ASCII characters", {
				errors: [{ path: "headers.idempotency-key", message: "1-255 visible ASCII characters" }],
			});
		}
		const db = c.get("db");
		const userId = c.get("auth").userId;
		const ref = { organizationId: c.get("access").organization.id, key };
		const body = await c.req.raw.clone().text();
		const requestHash = await sha256Hex(`${c.req.method} ${c.req.path}\n${userId}\n${body}`);

		const claim = await claimIdempotencyKey(db, { ...ref, userId, requestHash });
		if (!claim.claimed) {
			const row = claim.held;
			if (!row) throw new ApiError("CONFLICT", "Idempotency-Key is being released, retry");
			if (row.requestHash !== requestHash) {
				throw new ApiError("CONFLICT", "Idempotency-Key was already used for a different request");
			}
			if (row.state === "pending") throw new ApiError("CONFLICT", "a request with this Idempotency-Key is still in progress");
			// The stored answer's ETag is its row's version (store routes); Location is not repeated.
			const version = (JSON.parse(row.responseBody ?? "null") as { version?: unknown } | null)?.version;
			return new Response(row.responseBody, {
				status: row.status ?? 200,
				headers: {
					"content-type": "application/json",
					"idempotent-replayed": "true",
					"x-request-id": c.get("requestId"),
					...(typeof version === "number" ? { ETag: etag(version) } : {}),
				},
			});
		}

		claims.set(c, claim.claimed);
		await next();
		const res = c.res;
		// Both are no-ops when the work's batch already stored the response.
		if (res.status >= 200 && res.status < 300) await completeIdempotencyKey(db, claim.claimed, res.status, await res.clone().text());
		else await releaseIdempotencyKey(db, claim.claimed);
	});
}

/**
 * For a handler whose work is one batch: what the service needs to store the response (`status`,
 * `render(row)` as the body) in that batch. Undefined without an Idempotency-Key.
 */
export function idempotentCommit<T>(c: Context, status: number, render: (row: T) => unknown): IdempotentCommit<T> | undefined {
	const claim = claims.get(c);
	return claim ? { claim, status, render } : undefined;
}

/** The request's claim, for a service that builds its stored response in SQL. Undefined without an Idempotency-Key. */
export const idempotencyClaim = (c: Context): IdempotencyClaim | undefined => claims.get(c);
