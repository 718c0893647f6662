import { and, eq, inArray, isNull, SQL, sql } from "drizzle-orm";
import {
	API_KEY_PREFIX,
	type ApiKeyPrincipal,
	apiKeyActor,
	ApiKeyVerifier,
	apiKeyNow,
	generateApiKey,
	hashApiKey,
	ROTATION_GRACE_MS,
	setApiKeyClock,
	type StoredApiKey,
} from "../auth/api-key";
import { runBatch, typedRow } from "../db/batch";
import type { Database } from "../db/client";
import { type ApiKeyRow, apiKeys, permissions as permissionsTable } from "../db/schema";
import { ApiError, INVALID, INVALID_DETAIL } from "../errors";
import { newId } from "../lib/ids";
import { membershipPermissionsSql } from "./access";
import { auditEntry, tenantEvent } from "./events-bus";
import { type ChangeLog, collectOutbox, outboxInsert } from "./outbox";
import { keysetPage, type PageQuery } from "./keyset-page";
import { planOf, upgradeFor } from "./plans";

// Tenant API keys (issue 12): creation, listing, changes, rotation and revocation (always scoped by
// organization), and the D1 side of authenticating a key (auth/api-key.ts has the format and cache).

/** A key as the API shows it: never the secret or its hash. */
export interface ApiKeyView {
	id: string;
	name: string;
	/** Always "sk_live_": with last4, enough to recognise a key. */
	prefix: string;
	last4: string;
	permissions: string[];
	rateLimitPerMinute: number | null;
	createdBy: string;
	createdAt: number;
	updatedAt: number;
	lastUsedAt: number | null;
	expiresAt: number | null;
	rotatedAt: number | null;
	/** Until when the secret replaced by the last rotation still works; null when none does. */
	previousKeyExpiresAt: number | null;
}

export function apiKeyView(row: ApiKeyRow): ApiKeyView {
	return {
		id: row.id,
		name: row.name,
		prefix: API_KEY_PREFIX,
		last4: row.last4,
		permissions: JSON.parse(row.permissions) as string[],
		rateLimitPerMinute: row.rateLimitPerMinute,
		createdBy: row.createdBy,
		createdAt: row.createdAt,
		updatedAt: row.updatedAt,
		lastUsedAt: row.lastUsedAt,
		expiresAt: row.expiresAt,
		rotatedAt: row.rotatedAt,
		previousKeyExpiresAt: row.previousExpiresAt !== null && row.previousExpiresAt > apiKeyNow() ? row.previousExpiresAt : null,
	};
}

/**
 * The `data` of the api_key.created/updated/rotated/revoked outgoing webhook events (published next to
 * the audit entries of the same names): the key after the change (as it was, for revoked) and who made
 * it. Never the secret or its hash.
 */
export interface ApiKeyEventData {
	id: string;
	name: string;
	prefix: string;
	last4: string;
	permissions: string[];
	expiresAt: number | null;
	/** The principal that made the change: a user id or apikey:<id>. */
	actor: string | null;
}

export function apiKeyEventData(row: ApiKeyRow, actor: string | null): ApiKeyEventData {
	return {
		id: row.id,
		name: row.name,
		prefix: API_KEY_PREFIX,
		last4: row.last4,
		permissions: JSON.parse(row.permissions) as string[],
		expiresAt: row.expiresAt,
		actor,
	};
}

/** apiKeyView as SQL over the key's stored row at `now` (JSON, null when there is none): its twin, for an entry written in a change's batch. */
const keyViewSql = (keyId: string, now: number): SQL =>
	sql`(SELECT json_object('id', id, 'name', name, 'prefix', ${API_KEY_PREFIX}, 'last4', last4, 'permissions', json(permissions),
		'rateLimitPerMinute', rate_limit_per_minute, 'createdBy', created_by, 'createdAt', created_at, 'updatedAt', updated_at,
		'lastUsedAt', last_used_at, 'expiresAt', expires_at, 'rotatedAt', rotated_at,
		'previousKeyExpiresAt', CASE WHEN previous_expires_at > ${now} THEN previous_expires_at END) FROM api_keys WHERE id = ${keyId})`;

/** apiKeyEventData as SQL over the key's stored row (JSON): its twin, for an event written in a change's batch. */
const keyEventDataSql = (keyId: string, actor: string | null): SQL =>
	sql`(SELECT json_object('id', id, 'name', name, 'prefix', ${API_KEY_PREFIX}, 'last4', last4, 'permissions', json(permissions),
		'expiresAt', expires_at, 'actor', ${actor}) FROM api_keys WHERE id = ${keyId})`;

type KeyAction = "created" | "updated" | "rotated" | "revoked";

/**
 * The outbox statements of a change of a key, for its own batch (services/outbox.ts): the audit entry
 * and the outgoing webhook event, both `api_key.<action>`, written only while `when` holds. `data` is
 * the event's data (the key after the change; as it was, for revoked), `after` the entry's `after`:
 * known values, or SQL over the row as the batch left it. Never the secret or its hash.
 */
function keyChangeOutbox(
	log: ChangeLog,
	row: Pick<ApiKeyRow, "id" | "organizationId">,
	action: KeyAction,
	change: { before?: ApiKeyView; after?: ApiKeyView | SQL; data: ApiKeyEventData | SQL; when: SQL },
): SQL[] {
	const computed = (v: unknown): v is SQL => v instanceof SQL;
	const audit = auditEntry(log.meta, {
		organizationId: row.organizationId,
		action: `api_key.${action}`,
		targetType: "api_key",
		targetId: row.id,
		before: change.before,
		after: computed(change.after) ? undefined : change.after,
	});
	const event = tenantEvent(row.organizationId, `api_key.${action}`, computed(change.data) ? null : change.data);
	return [
		outboxInsert(audit, { when: change.when, ...(computed(change.after) ? { after: change.after } : {}) }),
		outboxInsert(event, { when: change.when, ...(computed(change.data) ? { set: { "$.data": sql`json(${change.data})` } } : {}) }),
	];
}

/** Who creates or changes a key: the principal and the permissions it holds in the organization. */
export interface KeyGrantor {
	actor: string;
	permissions: string[];
	/** When the caller stops working: an API key's expiry (null for a session, or a key that does not expire). */
	expiresAt: number | null;
	/** The caller is an admin of the organization (a user with org:admin). */
	admin: boolean;
}

/**
 * 403 unless the grantor holds every one of `permissions`: a key never gets more than whoever creates or
 * changes it holds, and whoever rotates it (and so receives its secret) holds what it has.
 */
function assertHeld(grantor: KeyGrantor, permissions: string[]): void {
	const notHeld = permissions.filter((p) => !grantor.permissions.includes(p));
	if (notHeld.length > 0) throw new ApiError("FORBIDDEN", `permissions the caller does not hold: ${notHeld.join(", ")}`);
}

const live = (orgId: string, keyId: string) =>
	and(eq(apiKeys.organizationId, orgId), eq(apiKeys.id, keyId), isNull(apiKeys.revokedAt));

/**
 * The permissions a key may be given: known to the catalogue (400 otherwise) and held by the grantor
 * (403 otherwise: a key never gets more than whoever creates or changes it holds).
 */
async function grantable(db: Database, grantor: KeyGrantor, wanted: string[]): Promise<string[]> {
	const unique = [...new Set(wanted)].sort();
	if (unique.length === 0) return unique;
	const known = new Set(
		(
			await db
				.select({ key: permissionsTable.key })
				.from(permissionsTable)
				.where(and(inArray(permissionsTable.key, unique), isNull(permissionsTable.deletedAt)))
		).map((r) => r.key),
	);
	const unknown = unique.filter((p) => !known.has(p));
	if (unknown.length > 0) {
		throw new ApiError("VALIDATION_FAILED", `permissions: unknown permission ${unknown.join(", ")}`, {
			errors: unknown.map((p) => ({ path: `permissions.${wanted.indexOf(p)}`, message: `unknown permission ${p}` })),
		});
	}
	assertHeld(grantor, unique);
	return unique;
}

function checkExpiry(expiresAt: number | undefined, now: number) {
	if (expiresAt !== undefined && expiresAt <= now) {
		throw new ApiError("VALIDATION_FAILED", "expiresAt: must be in the future", {
			errors: [{ path: "expiresAt", message: "must be in the future" }],
		});
	}
}

export async function getApiKey(db: Database, orgId: string, keyId: string): Promise<ApiKeyRow> {
	const [row] = await db.select().from(apiKeys).where(live(orgId, keyId));
	if (!row) throw new ApiError("NOT_FOUND", "api key not found");
	return row;
}

/** The organization's keys that are not revoked, oldest first, one keyset page over (created_at, id). */
export function listApiKeys(db: Database, orgId: string, q: PageQuery) {
	return keysetPage(db, apiKeys, "createdAt", "asc", and(eq(apiKeys.organizationId, orgId), isNull(apiKeys.revokedAt)), q);
}

/**
 * A new key with a fresh secret, returned once (only its SHA-256 is stored). Created by an expiring key, it
 * expires no later than that key (its `expiresAt` is capped, or set when none is given). 402 when the organization
 * already has the plan's number of live keys (not revoked, not expired); the count and the insert are
 * one statement, so concurrent creations cannot pass the limit together. Its `api_key.created` audit
 * entry and event are written in the insert's batch (only if the key was inserted), to be relayed (`log`).
 */
export async function createApiKey(
	db: Database,
	org: { id: string; plan: string; apiKeyLimit: number },
	grantor: KeyGrantor,
	input: { name: string; permissions: string[]; expiresAt?: number; rateLimitPerMinute?: number | null },
	log: ChangeLog,
): Promise<{ row: ApiKeyRow; secret: string }> {
	const now = apiKeyNow();
	checkExpiry(input.expiresAt, now);
	const perms = await grantable(db, grantor, input.permissions);
	const secret = generateApiKey();
	const row: ApiKeyRow = {
		id: newId("key"),
		organizationId: org.id,
		name: input.name,
		hash: await hashApiKey(secret),
		last4: secret.slice(-4),
		previousHash: null,
		previousExpiresAt: null,
		permissions: JSON.stringify(perms),
		rateLimitPerMinute: input.rateLimitPerMinute ?? null,
		createdBy: grantor.actor,
		createdAt: now,
		updatedAt: now,
		lastUsedAt: null,
		// A key made by an expiring key expires with it at the latest (it would outlive what made it).
		expiresAt:
			grantor.expiresAt === null ? (input.expiresAt ?? null) : Math.min(input.expiresAt ?? grantor.expiresAt, grantor.expiresAt),
		rotatedAt: null,
		revokedAt: null,
	};
	const results = await runBatch(db.$client, [
		sql`
		INSERT INTO api_keys (id, organization_id, name, hash, last4, permissions, rate_limit_per_minute, created_by,
			created_at, updated_at, expires_at)
		SELECT ${row.id}, ${row.organizationId}, ${row.name}, ${row.hash}, ${row.last4}, ${row.permissions},
			${row.rateLimitPerMinute}, ${row.createdBy}, ${row.createdAt}, ${row.updatedAt}, ${row.expiresAt}
		WHERE (SELECT count(*) FROM api_keys WHERE organization_id = ${org.id} AND revoked_at IS NULL
			AND (expires_at IS NULL OR expires_at > ${now})) < ${org.apiKeyLimit}
			AND ${makerLive(grantor.actor, now)}`,
		...keyChangeOutbox(log, row, "created", {
			after: apiKeyView(row),
			data: apiKeyEventData(row, log.meta.actor),
			when: sql`EXISTS (SELECT 1 FROM api_keys WHERE id = ${row.id})`,
		}),
	]);
	collectOutbox(log, results);
	if ((results[0]?.meta.changes ?? 0) === 0) {
		// A key revoked (or expired) meanwhile, still accepted by an isolate's cache: it makes nothing any more.
		if (!(await db.get<{ live: number }>(sql`SELECT ${makerLive(grantor.actor, now)} AS live`))?.live) {
			throw new ApiError("INVALID_TOKEN", INVALID_DETAIL, { headers: INVALID });
		}
		const plan = planOf(org.plan);
		const next = upgradeFor(plan, "apiKeys", org.apiKeyLimit + 1);
		throw new ApiError(
			"PAYMENT_REQUIRED",
			`the ${plan} plan allows ${org.apiKeyLimit} live API keys and all are in use; revoke one${next ? ` or upgrade to ${next}` : ""}`,
		);
	}
	return { row, secret };
}

/**
 * Changes exactly the fields given. Returns the key before and after. The `api_key.updated` entry and
 * event (the key as the update left it, computed in the batch) are written in the update's batch.
 */
export async function updateApiKey(
	db: Database,
	orgId: string,
	keyId: string,
	grantor: KeyGrantor,
	patch: { name?: string; permissions?: string[]; rateLimitPerMinute?: number | null },
	log: ChangeLog,
): Promise<{ before: ApiKeyRow; after: ApiKeyRow }> {
	const before = await getApiKey(db, orgId, keyId);
	const perms = patch.permissions === undefined ? undefined : await grantable(db, grantor, patch.permissions);
	const now = apiKeyNow();
	const update = db
		.update(apiKeys)
		.set({
			...(patch.name !== undefined ? { name: patch.name } : {}),
			...(perms !== undefined ? { permissions: JSON.stringify(perms) } : {}),
			...(patch.rateLimitPerMinute !== undefined ? { rateLimitPerMinute: patch.rateLimitPerMinute } : {}),
			updatedAt: now,
		})
		.where(live(orgId, keyId))
		.returning()
		.getSQL();
	const after = await commitKeyChange(db, log, [
		update,
		...keyChangeOutbox(log, before, "updated", {
			before: apiKeyView(before),
			after: keyViewSql(keyId, now),
			data: keyEventDataSql(keyId, log.meta.actor),
			// This update applied (a concurrent one in the same millisecond applied too, and has its own entry).
			when: sql`EXISTS (SELECT 1 FROM api_keys WHERE id = ${keyId} AND revoked_at IS NULL AND updated_at = ${now})`,
		}),
	]);
	if (!after) throw new ApiError("NOT_FOUND", "api key not found");
	return { before, after };
}

/**
 * A new secret for the key (returned once). The replaced secret keeps working for ROTATION_GRACE_MS;
 * a secret replaced by an earlier rotation stops at once. Whoever rotates receives the key's secret,
 * so they must hold every permission the key has (403 otherwise, as for creating it). The
 * `api_key.rotated` entry and event are written in the rotation's batch.
 */
export async function rotateApiKey(
	db: Database,
	orgId: string,
	keyId: string,
	grantor: KeyGrantor,
	log: ChangeLog,
): Promise<{ before: ApiKeyRow; after: ApiKeyRow; secret: string }> {
	const before = await getApiKey(db, orgId, keyId);
	assertHeld(grantor, JSON.parse(before.permissions) as string[]);
	await assertMayRotate(db, grantor, before);
	const now = apiKeyNow();
	const secret = generateApiKey();
	const hash = await hashApiKey(secret);
	const update = db
		.update(apiKeys)
		.set({
			hash,
			last4: secret.slice(-4),
			previousHash: before.hash,
			previousExpiresAt: now + ROTATION_GRACE_MS,
			rotatedAt: now,
			updatedAt: now,
		})
		// Only from the state read: a concurrent rotation must not leave a hash nobody holds in previous_hash.
		.where(and(live(orgId, keyId), eq(apiKeys.hash, before.hash)))
		.returning()
		.getSQL();
	const after = await commitKeyChange(db, log, [
		update,
		...keyChangeOutbox(log, before, "rotated", {
			before: apiKeyView(before),
			after: keyViewSql(keyId, now),
			data: keyEventDataSql(keyId, log.meta.actor),
			when: sql`EXISTS (SELECT 1 FROM api_keys WHERE id = ${keyId} AND hash = ${hash})`,
		}),
	]);
	if (!after) throw new ApiError("CONFLICT", "the key changed meanwhile; retry");
	return { before, after, secret };
}

/**
 * Whoever rotates a key receives its secret, so beyond holding its permissions: a caller other than an admin
 * rotates only itself (a key) and keys it made (itself, or through keys it made: those are narrowed with it,
 * keysWithinCreator),
 * and an expiring key only keys that expire no later than it does. 403 otherwise.
 */
async function assertMayRotate(db: Database, grantor: KeyGrantor, key: ApiKeyRow): Promise<void> {
	if (grantor.expiresAt !== null && (key.expiresAt === null || key.expiresAt > grantor.expiresAt)) {
		throw new ApiError("FORBIDDEN", "an expiring key can rotate only keys that expire no later than it does");
	}
	// An admin rotates any key; a key itself (its caller holds its secret already).
	if (grantor.admin || grantor.actor === apiKeyActor(key.id)) return;
	const made = await db.get<{ ok: number }>(sql`WITH RECURSIVE up(id, created_by) AS (
			SELECT id, created_by FROM api_keys WHERE id = ${key.id}
			UNION SELECT k.id, k.created_by FROM api_keys k JOIN up ON up.created_by = 'apikey:' || k.id)
		SELECT 1 AS ok FROM up WHERE created_by = ${grantor.actor} LIMIT 1`);
	if (!made) throw new ApiError("FORBIDDEN", "only an admin, or whoever made the key (or the keys that made it), can rotate it");
}

/**
 * Revokes the key (both its secrets), and with it every live key it made, and the keys those made in turn:
 * a key made by a key never outlives its maker (its expiry is capped by the maker's), and a leaked key's
 * secret must not survive in keys it handed out. They disappear from the API. Returns the key as it was.
 * Each key's `api_key.revoked` entry and event (the key as it was) are written in the revocation's batch,
 * ahead of it and under the same condition, so exactly when it applies.
 */
export async function revokeApiKey(db: Database, orgId: string, keyId: string, log: ChangeLog): Promise<ApiKeyRow> {
	const before = await getApiKey(db, orgId, keyId);
	// The keys it made, and those they made in turn: `made` for the statement that follows.
	const madeBy = sql`WITH RECURSIVE made(id) AS (
			SELECT id FROM api_keys WHERE created_by = ${apiKeyActor(keyId)} AND organization_id = ${orgId}
			UNION SELECT k.id FROM api_keys k JOIN made ON k.created_by = 'apikey:' || made.id AND k.organization_id = ${orgId})`;
	const made = await db.all<Record<string, unknown>>(
		sql`${madeBy} SELECT * FROM api_keys WHERE id IN (SELECT id FROM made) AND revoked_at IS NULL ORDER BY created_at, id`,
	);
	const now = apiKeyNow();
	const entry = (key: ApiKeyRow) =>
		keyChangeOutbox(log, key, "revoked", {
			before: apiKeyView(key),
			data: apiKeyEventData(key, log.meta.actor),
			when: sql`EXISTS (SELECT 1 FROM api_keys WHERE id = ${key.id} AND organization_id = ${orgId} AND revoked_at IS NULL)`,
		});
	const statements = [
		// The key itself first: commitKeyChange answers with the first row an UPDATE returned.
		...entry(before),
		db
			.update(apiKeys)
			.set({ revokedAt: now, updatedAt: now, previousHash: null, previousExpiresAt: null })
			.where(live(orgId, keyId))
			.returning()
			.getSQL(),
		// An entry for each key it made as read above; the revocation itself takes every one live when the batch
		// runs (one made since that read too; and none can be made after it: createApiKey wants a live maker).
		...made.flatMap((raw) => entry(typedRow(apiKeys, raw))),
		sql`${madeBy} UPDATE api_keys SET revoked_at = ${now}, updated_at = ${now}, previous_hash = NULL, previous_expires_at = NULL
			WHERE id IN (SELECT id FROM made) AND revoked_at IS NULL`,
	];
	const after = await commitKeyChange(db, log, statements);
	if (!after || after.id !== keyId) throw new ApiError("NOT_FOUND", "api key not found");
	return before;
}

/** SQL true when `actor` is a member, or an API key still live (not revoked, not expired) at `now`. */
function makerLive(actor: string, now: number): SQL {
	if (!actor.startsWith("apikey:")) return sql`1`;
	return sql`EXISTS (SELECT 1 FROM api_keys WHERE id = ${actor.slice("apikey:".length)} AND revoked_at IS NULL
		AND (expires_at IS NULL OR expires_at > ${now}))`;
}

/**
 * Runs a key change (one UPDATE … RETURNING among its outbox statements) as one batch, records the
 * outbox rows it wrote in `log` and forgets this isolate's cached keys. Returns the updated key, or
 * undefined when the update matched nothing.
 */
async function commitKeyChange(db: Database, log: ChangeLog, statements: SQL[]): Promise<ApiKeyRow | undefined> {
	const results = await runBatch(db.$client, statements);
	collectOutbox(log, results);
	forgetKeys();
	const raw = results.map((r) => r.results[0] as Record<string, unknown> | undefined).find((r) => r !== undefined && "hash" in r);
	return raw ? typedRow(apiKeys, raw) : undefined;
}

// ---------------------------------------------------------------------------------------------------
// Authentication

/** The key whose current secret, or whose secret replaced by the last rotation, hashes to `hash`. */
async function findApiKeyByHash(db: Database, hash: string): Promise<StoredApiKey | null> {
	const [row] = await db
		.select({
			id: apiKeys.id,
			organizationId: apiKeys.organizationId,
			name: apiKeys.name,
			last4: apiKeys.last4,
			hash: apiKeys.hash,
			previousHash: apiKeys.previousHash,
			previousExpiresAt: apiKeys.previousExpiresAt,
			permissions: apiKeys.permissions,
			rateLimitPerMinute: apiKeys.rateLimitPerMinute,
			expiresAt: apiKeys.expiresAt,
			revokedAt: apiKeys.revokedAt,
		})
		.from(apiKeys)
		.where(sql`${apiKeys.hash} = ${hash} OR ${apiKeys.previousHash} = ${hash}`)
		.limit(1);
	return row ? { ...row, permissions: JSON.parse(row.permissions) as string[] } : null;
}

/** last_used_at is written at most this often per key per isolate, behind the request (waitUntil). */
export const LAST_USED_WRITE_INTERVAL_MS = 60_000;

// This isolate's key cache (rows by hash, at most 5 s old: auth/api-key.ts) and, per key id, when it
// last wrote last_used_at. Both hold only what D1 holds for every request alike.
const verifier = new ApiKeyVerifier();
const lastUsedWritten = new Map<string, number>();

/** Forgets this isolate's cached keys (after their rows changed outside this module). */
export function forgetKeys(): void {
	verifier.clear();
}

/**
 * Keeps the keys a user made within what the user still holds, for the batch that changed or ended the
 * user's membership (Clerk's membership events and user.deleted, and the member routes): every live key
 * the user created in the organization (in every organization without `orgId`), and the keys those keys
 * created in turn (also through a key since revoked), loses the permissions the user's role no longer grants. A removed member's keys are
 * left with none (their calls answer 403); permissions taken away are not given back if the role returns.
 */
export function keysWithinCreator(userId: string, now: number, orgId?: string): SQL {
	const inOrg = orgId === undefined ? sql`` : sql`AND organization_id = ${orgId}`;
	return narrowKeysMadeBy(sql`SELECT id, organization_id, created_by FROM api_keys WHERE created_by = ${userId} ${inOrg}`, now);
}

/**
 * The same for every member holding the custom role `roleKey` (its key, or SQL reading it), for the batch
 * of Clerk's role.created/updated/deleted: the keys they made hold no more than the role now grants them.
 */
export function keysWithinRole(roleKey: string | SQL, now: number): SQL {
	return narrowKeysMadeBy(
		sql`SELECT k.id, k.organization_id, k.created_by FROM api_keys k
			JOIN memberships m ON m.user_id = k.created_by AND m.organization_id = k.organization_id WHERE m.role = ${roleKey}`,
		now,
	);
}

/**
 * Narrows the keys `seeds` selects (id, organization_id, created_by: the member who made them) and the keys
 * those made in turn to what that member holds in the key's organization now.
 */
function narrowKeysMadeBy(seeds: SQL, now: number): SQL {
	const held = membershipPermissionsSql(sql`api_keys.organization_id`, sql`(SELECT root FROM made WHERE made.id = api_keys.id LIMIT 1)`);
	// Through revoked keys too (a key revoked before revocation took the keys it made along left them live).
	return sql`WITH RECURSIVE made(id, org, root) AS (
			${seeds}
			UNION SELECT k.id, k.organization_id, made.root FROM api_keys k JOIN made ON k.created_by = 'apikey:' || made.id
				AND k.organization_id = made.org)
		UPDATE api_keys SET permissions = (SELECT json_group_array(value) FROM json_each(api_keys.permissions) WHERE value IN (${held})),
			updated_at = ${now}
		WHERE id IN (SELECT id FROM made) AND revoked_at IS NULL
			AND EXISTS (SELECT 1 FROM json_each(api_keys.permissions) WHERE value NOT IN (${held}))`;
}

/** For Clerk's permission.deleted: no live key keeps the permission (its id's key). */
export function keysWithoutPermission(permissionId: string, now: number): SQL {
	const key = sql`(SELECT key FROM permissions WHERE (id = ${permissionId} OR clerk_id = ${permissionId}) AND is_system = 0 AND deleted_at IS NOT NULL
		ORDER BY id = ${permissionId} DESC LIMIT 1)`;
	return sql`UPDATE api_keys SET permissions = (SELECT json_group_array(value) FROM json_each(api_keys.permissions) WHERE value <> ${key}),
			updated_at = ${now}
		WHERE revoked_at IS NULL AND EXISTS (SELECT 1 FROM json_each(api_keys.permissions) WHERE value = ${key})`;
}

/** Test hook: forget the cached keys and last-used writes, and go back to the real clock. */
export function resetApiKeyState(): void {
	verifier.clear();
	lastUsedWritten.clear();
	setApiKeyClock(() => Date.now());
}

function noteUse(db: Database, keyId: string, background: (work: Promise<unknown>) => void): void {
	const now = apiKeyNow();
	const last = lastUsedWritten.get(keyId);
	if (last !== undefined && now - last < LAST_USED_WRITE_INTERVAL_MS && now >= last) return;
	if (lastUsedWritten.size >= 10_000) lastUsedWritten.clear();
	lastUsedWritten.set(keyId, now);
	const write = db
		.update(apiKeys)
		.set({ lastUsedAt: sql`max(coalesce(${apiKeys.lastUsedAt}, 0), ${now})` })
		.where(eq(apiKeys.id, keyId))
		.then(() => undefined)
		.catch(() => {
			lastUsedWritten.delete(keyId); // written by the next request instead
		});
	try {
		background(write);
	} catch {
		// No execution context to extend (a direct app.request): the write still runs.
	}
}

/**
 * The principal behind an API key secret; throws ApiKeyError (a 401) for an unknown, revoked or
 * expired key or a rotated-out secret past its grace period. Notes the use (last_used_at, behind).
 * @example const key = await authenticateApiKey(db, secret, (p) => c.executionCtx.waitUntil(p));
 */
export async function authenticateApiKey(
	db: Database,
	secret: string,
	background: (work: Promise<unknown>) => void,
	/** When set, a key this isolate has no cached row for is not looked up in D1: this is thrown instead. */
	refuseLookup?: () => Error,
): Promise<ApiKeyPrincipal> {
	const principal = await verifier.verify(secret, (hash) => (refuseLookup ? Promise.reject(refuseLookup()) : findApiKeyByHash(db, hash)));
	noteUse(db, principal.id, background);
	return principal;
}
