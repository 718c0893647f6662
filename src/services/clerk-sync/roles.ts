import { type SQL, sql } from "drizzle-orm";
import { normalizeRoleKey } from "../../auth/claims";
import { type Data, str as s } from "../../lib/payload";
import { createdAt, ignore, type Planner, planOf, staleRow } from "./shared";

/** Clerk's built-in roles are seeded by the migrations and never mirrored. */
const SYSTEM_ROLES = new Set(["org:admin", "org:member"]);

/** role.created / role.updated: a custom role and, if this event is the one stored, its permission set. */
const upsertRole: Planner = (e) => {
	const d = e.data;
	const key = s(d.key);
	if (!e.id || !key || SYSTEM_ROLES.has(normalizeRoleKey(key))) return ignore(e);
	const { id, objectTs, now } = e;
	const perms = (Array.isArray(d.permissions) ? (d.permissions as Data[]) : [])
		.map((p) => ({ id: s(p.id), key: s(p.key), name: s(p.name) }))
		.filter((p): p is { id: string; key: string; name: string | null } => !!p.id && !!p.key);
	const statements: SQL[] = [
		sql`
			INSERT INTO roles (id, organization_id, key, name, description, is_system, source_updated_at, created_at, updated_at)
			VALUES (${id}, NULL, ${normalizeRoleKey(key)}, ${s(d.name) ?? key}, ${s(d.description)}, 0, ${objectTs},
				${createdAt(d, now)}, ${now})
			ON CONFLICT (id) DO UPDATE SET key = excluded.key, name = excluded.name, description = excluded.description,
				source_updated_at = excluded.source_updated_at, updated_at = excluded.updated_at, deleted_at = NULL
			WHERE roles.deleted_at IS NULL AND excluded.source_updated_at >= roles.source_updated_at`,
		...perms.map(
			(p) => sql`INSERT INTO permissions (id, key, name, source_updated_at, created_at, updated_at)
				VALUES (${p.id}, ${p.key}, ${p.name ?? p.key}, 0, ${now}, ${now}) ON CONFLICT DO NOTHING`,
		),
		// Replace the role's permission set only if this event is the one now stored.
		sql`DELETE FROM role_permissions WHERE role_id = (SELECT id FROM roles WHERE id = ${id} AND source_updated_at = ${objectTs})`,
	];
	if (perms.length > 0) {
		statements.push(
			sql`INSERT OR IGNORE INTO role_permissions (role_id, permission_id)
				SELECT r.id, p.id FROM roles r JOIN permissions p ON p.key IN (${sql.join(
					perms.map((p) => sql`${p.key}`),
					sql`, `,
				)})
				WHERE r.id = ${id} AND r.source_updated_at = ${objectTs}`,
		);
	}
	return planOf(e, { statements, staleCheck: staleRow("roles", "id", id, objectTs, true), invalidate: { all: true } });
};

/** permission.created / permission.updated: keyed by the permission key; system permissions stay as seeded. */
const upsertPermission: Planner = (e) => {
	const d = e.data;
	const key = s(d.key);
	if (!e.id || !key) return ignore(e);
	return planOf(e, {
		statements: [
			sql`
				INSERT INTO permissions (id, key, name, description, source_updated_at, created_at, updated_at)
				VALUES (${e.id}, ${key}, ${s(d.name) ?? key}, ${s(d.description)}, ${e.objectTs}, ${createdAt(d, e.now)}, ${e.now})
				ON CONFLICT (key) DO UPDATE SET name = excluded.name, description = excluded.description,
					source_updated_at = excluded.source_updated_at, updated_at = excluded.updated_at
				WHERE permissions.is_system = 0 AND permissions.deleted_at IS NULL
					AND excluded.source_updated_at >= permissions.source_updated_at`,
		],
		staleCheck: staleRow("permissions", "key", key, e.objectTs, true),
		invalidate: { all: true },
	});
};

/** role.deleted / permission.deleted: soft delete of a custom role or permission. */
function remove(table: "roles" | "permissions"): Planner {
	return (e) => {
		if (!e.id) return ignore(e);
		return planOf(e, {
			statements: [
				sql`UPDATE ${sql.raw(table)} SET deleted_at = ${e.eventTs}, updated_at = ${e.now}, source_updated_at = max(source_updated_at, ${e.eventTs})
					WHERE id = ${e.id} AND is_system = 0 AND deleted_at IS NULL`,
			],
			invalidate: { all: true },
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
