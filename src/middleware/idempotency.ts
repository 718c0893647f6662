import { and, eq, lt } from "drizzle-orm";
import { createMiddleware } from "hono/factory";
import { idempotencyKeys } from "../db/schema";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { sha256Hex } from "../lib/crypto";

/** Stored responses are replayed for 24 hours; an older key may be reused for a new request. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
const KEY_SHAPE = /^[\x21-\x7e]{1,255}$/;

/**
 * Idempotency-Key for POSTs on tenant routes (after requireOrgMember). The first request with a key
 * claims it (a "pending" row, unique per organization and key) and stores its 2xx response; a retry
 * with the same key and the same request gets that response again (Idempotent-Replayed: true) and
 * creates nothing. The same key with another body, path or user is a 409, as is a retry while the
 * first is still running. A failed request (non-2xx) releases the key.
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
		const organizationId = c.get("access").organization.id;
		const userId = c.get("auth").userId;
		const body = await c.req.raw.clone().text();
		const requestHash = await sha256Hex(`${c.req.method} ${c.req.path}\n${userId}\n${body}`);
		const now = Date.now();
		const where = and(eq(idempotencyKeys.organizationId, organizationId), eq(idempotencyKeys.key, key));

		// One statement claims the key: a new one, or an expired one (free again) taken over.
		const claimed = await db
			.insert(idempotencyKeys)
			.values({ organizationId, key, userId, requestHash, state: "pending", createdAt: now })
			.onConflictDoUpdate({
				target: [idempotencyKeys.organizationId, idempotencyKeys.key],
				set: { userId, requestHash, state: "pending", status: null, responseBody: null, createdAt: now },
				setWhere: lt(idempotencyKeys.createdAt, now - IDEMPOTENCY_TTL_MS),
			})
			.returning({ key: idempotencyKeys.key });

		if (claimed.length === 0) {
			const [row] = await db.select().from(idempotencyKeys).where(where);
			if (!row) throw new ApiError("CONFLICT", "Idempotency-Key is being released, retry");
			if (row.requestHash !== requestHash) {
				throw new ApiError("CONFLICT", "Idempotency-Key was already used for a different request");
			}
			if (row.state === "pending") throw new ApiError("CONFLICT", "a request with this Idempotency-Key is still in progress");
			return new Response(row.responseBody, {
				status: row.status ?? 200,
				headers: { "content-type": "application/json", "idempotent-replayed": "true", "x-request-id": c.get("requestId") },
			});
		}

		await next();
		const res = c.res;
		if (res.status >= 200 && res.status < 300) {
			await db
				.update(idempotencyKeys)
				.set({ state: "done", status: res.status, responseBody: await res.clone().text() })
				.where(where);
		} else {
			await db.delete(idempotencyKeys).where(where);
		}
	});
}
