import { type SQL, sql } from "drizzle-orm";
import { normalizeRoleKey } from "../../auth/claims";
import { str as s } from "../../lib/payload";
import { keysWithinRole, keysWithoutPermission } from "../api-keys";
import { createdAt, ignore, objects, type Planner, planOf, staleRow } from "./shared";

/** Clerk's built-in roles are seeded by the migrations and never mirrored. */
const SYSTEM_ROLES = new Set(["org:admin", "org:member"]);

/** D1 binds at most 100 parameters per statement: lists of keys go in chunks of this size. */
const KEY_CHUNK = 50;

function chunks<T>(list: T[], size = KEY_CHUNK): T[][] {
	const out: T[][] = [];
	for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
	return out;
}

/**
 * Keys are unique, ids are Clerk's: a key reused by a new role or permission (new id) after the old
 * one was deleted would collide with the old one's tombstone. The tombstone keeps its row (so a late
 * event for the old id stays stale) but gives up the key, renamed `key#id`.
 */
const freeTombstonedPermissionKeys = (keys: string[]): SQL[] =>
	chunks(keys).map(
		(part) => sql`UPDATE permissions SET key = key || '#' || id
			WHERE is_system = 0 AND deleted_at IS NOT NULL AND key IN (${sql.join(
				part.map((k) => sql`${k}`),
				sql`, `,
			)})`,
	);

/** role.created / role.updated: a custom role and, if this event is the one stored, its permission set. */
const upsertRole: Planner = (e) => {
	const d = e.data;
	const key = s(d.key);
	if (!e.id || !key || SYSTEM_ROLES.has(normalizeRoleKey(key))) return ignore(e);
	const { id, objectTs, now } = e;
	const roleKey = normalizeRoleKey(key);
	const perms = objects(d, "permissions")
		.map((p) => ({ id: s(p.id), key: s(p.key), name: s(p.name) }))
		.filter((p): p is { id: string; key: string; name: string | null } => !!p.id && !!p.key);
	const statements: SQL[] = [
		// Clerk keeps role keys unique: another role holding this key was deleted (tombstone) or, when
		// older than this event, has been deleted in Clerk though its role.deleted has not arrived yet.
		sql`
			UPDATE roles SET key = key || '#' || id, deleted_at = coalesce(deleted_at, ${objectTs}), updated_at = ${now}
			WHERE organization_id IS NULL AND key = ${roleKey} AND id <> ${id} AND is_system = 0
				AND (deleted_at IS NOT NULL OR source_updated_at < ${objectTs})`,
		// A newer role still holding the key makes this event stale: nothing inserted (last clause).
		sql`
			INSERT INTO roles (id, organization_id, key, name, description, is_system, source_updated_at, created_at, updated_at)
			VALUES (${id}, NULL, ${roleKey}, ${s(d.name) ?? key}, ${s(d.description)}, 0, ${objectTs},
				${createdAt(d, now)}, ${now})
			ON CONFLICT (id) DO UPDATE SET key = excluded.key, name = excluded.name, description = excluded.description,
				source_updated_at = excluded.source_updated_at, updated_at = excluded.updated_at, deleted_at = NULL
			WHERE roles.deleted_at IS NULL AND excluded.source_updated_at >= roles.source_updated_at
			ON CONFLICT DO NOTHING`,
		...freeTombstonedPermissionKeys(perms.map((p) => p.key)),
		...perms.map(
			(p) => sql`INSERT INTO permissions (id, key, name, source_updated_at, created_at, updated_at)
				VALUES (${p.id}, ${p.key}, ${p.name ?? p.key}, 0, ${now}, ${now}) ON CONFLICT DO NOTHING`,
		),
		...perms.map((p) => clerkIdOfSeeded(p.key, p.id)),
		// Replace the role's permission set only if this event is the one now stored.
		sql`DELETE FROM role_permissions WHERE role_id = (SELECT id FROM roles WHERE id = ${id} AND source_updated_at = ${objectTs})`,
		...chunks(perms).map(
			(part) => sql`INSERT OR IGNORE INTO role_permissions (role_id, permission_id)
				SELECT r.id, p.id FROM roles r JOIN permissions p ON p.deleted_at IS NULL AND p.key IN (${sql.join(
					part.map((p) => sql`${p.key}`),
					sql`, `,
				)})
				WHERE r.id = ${id} AND r.source_updated_at = ${objectTs} AND r.deleted_at IS NULL`,
		),
		// The keys its holders made keep no more than the role grants now.
		keysWithinRole(roleKey, now),
	];
	return planOf(e, {
		statements,
		// Stale also when no row was stored for this id (a newer role holds the key).
		staleCheck: sql`(SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM roles WHERE id = ${id}) THEN 1
			ELSE coalesce(${staleRow("roles", "id", id, objectTs, true)}, 0) END)`,
		invalidate: { all: true, storesOf: holdersOfRole(roleKey) },
	});
};

/**
 * A permission seeded here under another id (the catalogue, migrations/0001) learns Clerk's id for its key, so
 * that permission.deleted, which names only the id, finds it.
 */
const clerkIdOfSeeded = (key: string, clerkId: string): SQL =>
	sql`UPDATE permissions SET clerk_id = ${clerkId} WHERE key = ${key} AND id <> ${clerkId} AND clerk_id IS NOT ${clerkId}
		AND deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM permissions WHERE id = ${clerkId})`;

/** The row of a permission by Clerk's id: its own id, or the Clerk id of a seeded row. */
const byClerkId = (id: string): SQL => sql`(id = ${id} OR clerk_id = ${id})`;

/** permission.created / permission.updated: keyed by the permission key; system permissions stay as seeded. */
const upsertPermission: Planner = (e) => {
	const d = e.data;
	const key = s(d.key);
	if (!e.id || !key) return ignore(e);
	return planOf(e, {
		statements: [
			clerkIdOfSeeded(key, e.id),
			// A deleted permission with this key (another id) gives the key up to the new one.
			sql`UPDATE permissions SET key = key || '#' || id
				WHERE key = ${key} AND id <> ${e.id} AND is_system = 0 AND deleted_at IS NOT NULL`,
			sql`
				INSERT INTO permissions (id, key, name, description, source_updated_at, created_at, updated_at)
				VALUES (${e.id}, ${key}, ${s(d.name) ?? key}, ${s(d.description)}, ${e.objectTs}, ${createdAt(d, e.now)}, ${e.now})
				ON CONFLICT (key) DO UPDATE SET name = excluded.name, description = excluded.description,
					source_updated_at = excluded.source_updated_at, updated_at = excluded.updated_at
				WHERE permissions.is_system = 0 AND permissions.deleted_at IS NULL
					AND excluded.source_updated_at >= permissions.source_updated_at
				ON CONFLICT DO NOTHING`,
		],
		// Its own row (a tombstone of a deletion that came first), else the row holding its key (a seeded one).
		staleCheck: sql`coalesce(${staleRow("permissions", "id", e.id, e.objectTs, true)}, ${staleRow("permissions", "key", key, e.objectTs, true)})`,
		invalidate: { all: true },
	});
};

/** The organizations where someone holds the role (its key, or SQL reading it): their stores mirror its permissions. */
const holdersOfRole = (roleKey: string | SQL): SQL => sql`SELECT DISTINCT organization_id FROM memberships WHERE role = ${roleKey} AND deleted_at IS NULL`;

/**
 * role.deleted / permission.deleted: soft delete of a custom role or permission. The keys made by the role's
 * holders are narrowed to what they hold without it (nothing, for the role); no key keeps a deleted permission.
 */
function remove(table: "roles" | "permissions"): Planner {
	return (e) => {
		if (!e.id) return ignore(e);
		const roles = table === "roles";
		const deleted = roles ? sql`(SELECT key FROM roles WHERE id = ${e.id} AND is_system = 0 AND deleted_at IS NOT NULL)` : null;
		const row = roles ? sql`id = ${e.id}` : byClerkId(e.id);
		return planOf(e, {
			statements: [
				sql`UPDATE ${sql.raw(table)} SET deleted_at = ${e.eventTs}, updated_at = ${e.now}, source_updated_at = max(source_updated_at, ${e.eventTs})
					WHERE ${row} AND is_system = 0 AND deleted_at IS NULL`,
				// Deleted before its creation arrived (Clerk's deliveries are unordered): a tombstone under a key of its
				// own, so the late created finds it deleted and is stale (a role's key is freed for a new role as any tombstone's).
				roles
					? sql`INSERT INTO roles (id, organization_id, key, name, is_system, source_updated_at, created_at, updated_at, deleted_at)
						VALUES (${e.id}, NULL, ${`deleted#${e.id}`}, ${`deleted#${e.id}`}, 0, ${e.eventTs}, ${e.now}, ${e.now}, ${e.eventTs})
						ON CONFLICT DO NOTHING`
					: sql`INSERT INTO permissions (id, key, name, is_system, source_updated_at, created_at, updated_at, deleted_at)
						SELECT ${e.id}, ${`deleted#${e.id}`}, ${`deleted#${e.id}`}, 0, ${e.eventTs}, ${e.now}, ${e.now}, ${e.eventTs}
						WHERE NOT EXISTS (SELECT 1 FROM permissions WHERE clerk_id = ${e.id})
						ON CONFLICT DO NOTHING`,
				deleted ? keysWithinRole(deleted, e.now) : keysWithoutPermission(e.id, e.now),
			],
			invalidate: {
				all: true,
				storesOf: deleted
					? holdersOfRole(deleted)
					: sql`SELECT DISTINCT m.organization_id FROM memberships m JOIN roles r ON r.key = m.role AND r.deleted_at IS NULL
						JOIN role_permissions rp ON rp.role_id = r.id WHERE rp.permission_id IN (SELECT id FROM permissions WHERE ${byClerkId(e.id)})
						AND m.deleted_at IS NULL`,
			},
		});
	};
}

export const rolePlanners: Record<string, Planner> = {
	"role.created": upsertRole,
	"role.updated": upsertRole,
	"role.deleted": remove("roles"),
	"permission.created": upsertPermission,
	"permission.updated": upsertPermission,
	"permission.deleted": remove("permissions"),
};
