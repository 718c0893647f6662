import { type SQL, sql } from "drizzle-orm";
import { normalizeRoleKey } from "../auth/claims";
import { type Data, num as n, obj, str as s } from "../lib/payload";
import type { ClerkEnvelope } from "../queue/messages";
import type { TenantEvent } from "../queue/tenant-events";
import { systemAudit, tenantEvent } from "./events-bus";

/**
 * Turns one Clerk event into D1 statements, run later in a db.batch (atomic, one round trip).
 *
 * Ordering: each mirrored row keeps Clerk's clock in source_updated_at (the object's updated_at, or
 * the envelope timestamp for deletions). Upserts carry `WHERE excluded.ts >= stored ts`, so an older
 * event never overwrites newer state whatever order events arrive in; users and organizations stay
 * deleted once deleted. A membership arriving before its user or organization creates placeholders
 * (source_updated_at = 0) that the real event later fills in.
 */
export interface SyncPlan {
	statements: SQL[];
	organizationId: string | null;
	entityId: string | null;
	/** SQL evaluating to 1 when, after the statements ran, the event turned out older than stored state. */
	staleCheck: SQL | null;
	/** Isolate caches to drop once applied. */
	invalidate: { orgId?: string; userId?: string; all?: boolean };
	ignored: boolean;
	/** Audit entries and outgoing webhook events to publish once the event is applied (not when stale). */
	events?: TenantEvent[];
}

/** Clerk sends ms; tolerate seconds from hand-made payloads. */
const ms = (v: number | null): number | null => (v === null ? null : v < 1e12 ? v * 1000 : v);

const SYSTEM_ROLES = new Set(["org:admin", "org:member"]);

function primaryEmail(d: Data): string | null {
	const list = Array.isArray(d.email_addresses) ? (d.email_addresses as Data[]) : [];
	const primary = list.find((e) => e.id === d.primary_email_address_id) ?? list[0];
	return s(primary?.email_address);
}

function upsertUser(d: Data, ts: number, now: number) {
	return sql`
		INSERT INTO users (id, email, first_name, last_name, image_url, source_updated_at, created_at, updated_at)
		VALUES (${d.id}, ${primaryEmail(d)}, ${s(d.first_name)}, ${s(d.last_name)}, ${s(d.image_url)}, ${ts},
			${ms(n(d.created_at)) ?? now}, ${now})
		ON CONFLICT (id) DO UPDATE SET email = excluded.email, first_name = excluded.first_name,
			last_name = excluded.last_name, image_url = excluded.image_url,
			source_updated_at = excluded.source_updated_at, created_at = excluded.created_at, updated_at = excluded.updated_at
		WHERE users.deleted_at IS NULL AND excluded.source_updated_at >= users.source_updated_at`;
}

function upsertOrg(d: Data, ts: number, now: number) {
	return sql`
		INSERT INTO organizations (id, name, slug, image_url, source_updated_at, created_at, updated_at)
		VALUES (${d.id}, ${s(d.name)}, ${s(d.slug)}, ${s(d.image_url)}, ${ts}, ${ms(n(d.created_at)) ?? now}, ${now})
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, slug = excluded.slug, image_url = excluded.image_url,
			source_updated_at = excluded.source_updated_at, created_at = excluded.created_at, updated_at = excluded.updated_at
		WHERE organizations.deleted_at IS NULL AND excluded.source_updated_at >= organizations.source_updated_at`;
}

function softDelete(table: "users" | "organizations", id: string, ts: number, now: number) {
	const t = sql.raw(table);
	return sql`
		INSERT INTO ${t} (id, source_updated_at, created_at, updated_at, deleted_at) VALUES (${id}, ${ts}, ${now}, ${now}, ${ts})
		ON CONFLICT (id) DO UPDATE SET deleted_at = excluded.deleted_at, updated_at = excluded.updated_at,
			source_updated_at = max(${t}.source_updated_at, excluded.source_updated_at)
		WHERE ${t}.deleted_at IS NULL`;
}

/** Placeholders for a membership's user/organization; filled in (not overwritten) until the real event. */
function placeholders(orgId: string, org: Data, userId: string, user: Data, now: number) {
	const orgTs = ms(n(org.updated_at));
	return [
		orgTs !== null && s(org.id) === orgId
			? upsertOrg(org, orgTs, now)
			: sql`INSERT INTO organizations (id, source_updated_at, created_at, updated_at) VALUES (${orgId}, 0, ${now}, ${now})
				ON CONFLICT (id) DO NOTHING`,
		sql`
			INSERT INTO users (id, email, first_name, last_name, image_url, source_updated_at, created_at, updated_at)
			VALUES (${userId}, ${s(user.identifier)}, ${s(user.first_name)}, ${s(user.last_name)}, ${s(user.image_url)}, 0, ${now}, ${now})
			ON CONFLICT (id) DO UPDATE SET email = coalesce(users.email, excluded.email),
				first_name = coalesce(users.first_name, excluded.first_name), last_name = coalesce(users.last_name, excluded.last_name),
				image_url = coalesce(users.image_url, excluded.image_url)
			WHERE users.source_updated_at = 0 AND users.deleted_at IS NULL`,
	];
}

const staleRow = (table: string, column: string, id: string, ts: number, deletedBlocks: boolean): SQL =>
	sql`(SELECT CASE WHEN source_updated_at > ${ts}${deletedBlocks ? sql` OR deleted_at IS NOT NULL` : sql``} THEN 1 ELSE 0 END
		FROM ${sql.raw(table)} WHERE ${sql.raw(column)} = ${id})`;

export function planClerkEvent(env: ClerkEnvelope, eventTs: number, now: number, eventId = ""): SyncPlan {
	const d = env.data;
	const id = s(d.id);
	const plan: SyncPlan = {
		statements: [],
		organizationId: null,
		entityId: id,
		staleCheck: null,
		invalidate: {},
		ignored: false,
	};
	const objectTs = ms(n(d.updated_at)) ?? eventTs;
	const ignore = () => {
		plan.ignored = true;
		return plan;
	};

	switch (env.type) {
		case "user.created":
		case "user.updated": {
			if (!id) return ignore();
			plan.statements.push(upsertUser(d, objectTs, now));
			plan.staleCheck = staleRow("users", "id", id, objectTs, true);
			plan.invalidate = { all: true };
			return plan;
		}
		case "user.deleted": {
			if (!id) return ignore();
			plan.statements.push(softDelete("users", id, eventTs, now));
			plan.invalidate = { all: true };
			return plan;
		}
		case "organization.created":
		case "organization.updated": {
			if (!id) return ignore();
			plan.organizationId = id;
			plan.statements.push(upsertOrg(d, objectTs, now));
			plan.staleCheck = staleRow("organizations", "id", id, objectTs, true);
			plan.invalidate = { orgId: id };
			return plan;
		}
		case "organization.deleted": {
			if (!id) return ignore();
			plan.organizationId = id;
			plan.statements.push(softDelete("organizations", id, eventTs, now));
			plan.invalidate = { orgId: id };
			return plan;
		}
		case "organizationMembership.created":
		case "organizationMembership.updated":
		case "organizationMembership.deleted": {
			const org = obj(d.organization);
			const user = obj(d.public_user_data);
			const orgId = s(org.id) ?? s(d.organization_id);
			const userId = s(user.user_id) ?? s(d.user_id);
			const role = s(d.role);
			if (!id || !orgId || !userId || !role) return ignore();
			plan.organizationId = orgId;
			plan.statements.push(...placeholders(orgId, org, userId, user, now));
			const deleted = env.type === "organizationMembership.deleted";
			// A deletion is ordered by when it happened (the envelope), not the object's last update.
			const ts = deleted ? Math.max(eventTs, objectTs) : objectTs;
			plan.statements.push(
				sql`
					INSERT INTO memberships (id, organization_id, user_id, role, source_updated_at, created_at, updated_at, deleted_at)
					VALUES (${id}, ${orgId}, ${userId}, ${normalizeRoleKey(role)}, ${ts}, ${ms(n(d.created_at)) ?? now}, ${now},
						${deleted ? ts : null})
					ON CONFLICT (organization_id, user_id) DO UPDATE SET id = excluded.id, role = excluded.role,
						source_updated_at = excluded.source_updated_at, created_at = excluded.created_at,
						updated_at = excluded.updated_at, deleted_at = excluded.deleted_at
					WHERE excluded.source_updated_at > memberships.source_updated_at
						OR (excluded.source_updated_at = memberships.source_updated_at AND memberships.deleted_at IS NULL)`,
			);
			plan.staleCheck = sql`(SELECT CASE WHEN source_updated_at > ${ts} OR (source_updated_at = ${ts}
				AND (deleted_at IS NULL) <> ${deleted ? 0 : 1}) THEN 1 ELSE 0 END
				FROM memberships WHERE organization_id = ${orgId} AND user_id = ${userId})`;
			plan.invalidate = { orgId, userId };
			const action = `membership.${env.type.split(".")[1]}`;
			const data = { organizationId: orgId, membershipId: id, userId, role: normalizeRoleKey(role) };
			plan.events = [
				systemAudit({
					id: `aud_${eventId}`,
					organizationId: orgId,
					action,
					targetType: "membership",
					targetId: id,
					after: data,
					occurredAt: eventTs,
				}),
				tenantEvent(orgId, action, data, `evt_${eventId}`),
			];
			return plan;
		}
		case "organizationInvitation.created":
		case "organizationInvitation.accepted":
		case "organizationInvitation.revoked": {
			const orgId = s(d.organization_id);
			if (!id || !orgId) return ignore();
			plan.organizationId = orgId;
			const status = s(d.status) ?? env.type.split(".")[1] ?? "pending";
			plan.statements.push(
				sql`
					INSERT INTO invitations (id, organization_id, email, role, status, source_updated_at, created_at, updated_at)
					VALUES (${id}, ${orgId}, ${s(d.email_address) ?? ""}, ${normalizeRoleKey(s(d.role) ?? "org:member")}, ${status},
						${objectTs}, ${ms(n(d.created_at)) ?? now}, ${now})
					ON CONFLICT (id) DO UPDATE SET status = excluded.status, role = excluded.role,
						source_updated_at = excluded.source_updated_at, updated_at = excluded.updated_at
					WHERE excluded.source_updated_at >= invitations.source_updated_at`,
			);
			plan.staleCheck = staleRow("invitations", "id", id, objectTs, false);
			return plan;
		}
		case "role.created":
		case "role.updated": {
			const key = s(d.key);
			if (!id || !key || SYSTEM_ROLES.has(normalizeRoleKey(key))) return ignore();
			const perms = (Array.isArray(d.permissions) ? (d.permissions as Data[]) : [])
				.map((p) => ({ id: s(p.id), key: s(p.key), name: s(p.name) }))
				.filter((p): p is { id: string; key: string; name: string | null } => !!p.id && !!p.key);
			plan.statements.push(
				sql`
					INSERT INTO roles (id, organization_id, key, name, description, is_system, source_updated_at, created_at, updated_at)
					VALUES (${id}, NULL, ${normalizeRoleKey(key)}, ${s(d.name) ?? key}, ${s(d.description)}, 0, ${objectTs},
						${ms(n(d.created_at)) ?? now}, ${now})
					ON CONFLICT (id) DO UPDATE SET key = excluded.key, name = excluded.name, description = excluded.description,
						source_updated_at = excluded.source_updated_at, updated_at = excluded.updated_at, deleted_at = NULL
					WHERE roles.deleted_at IS NULL AND excluded.source_updated_at >= roles.source_updated_at`,
			);
			for (const p of perms) {
				plan.statements.push(
					sql`INSERT INTO permissions (id, key, name, source_updated_at, created_at, updated_at)
						VALUES (${p.id}, ${p.key}, ${p.name ?? p.key}, 0, ${now}, ${now}) ON CONFLICT DO NOTHING`,
				);
			}
			// Replace the role's permission set only if this event is the one now stored.
			plan.statements.push(
				sql`DELETE FROM role_permissions WHERE role_id = (SELECT id FROM roles WHERE id = ${id} AND source_updated_at = ${objectTs})`,
			);
			if (perms.length > 0) {
				plan.statements.push(
					sql`INSERT OR IGNORE INTO role_permissions (role_id, permission_id)
						SELECT r.id, p.id FROM roles r JOIN permissions p ON p.key IN (${sql.join(
							perms.map((p) => sql`${p.key}`),
							sql`, `,
						)})
						WHERE r.id = ${id} AND r.source_updated_at = ${objectTs}`,
				);
			}
			plan.staleCheck = staleRow("roles", "id", id, objectTs, true);
			plan.invalidate = { all: true };
			return plan;
		}
		case "role.deleted":
		case "permission.deleted": {
			if (!id) return ignore();
			const table = sql.raw(env.type === "role.deleted" ? "roles" : "permissions");
			plan.statements.push(
				sql`UPDATE ${table} SET deleted_at = ${eventTs}, updated_at = ${now}, source_updated_at = max(source_updated_at, ${eventTs})
					WHERE id = ${id} AND is_system = 0 AND deleted_at IS NULL`,
			);
			plan.invalidate = { all: true };
			return plan;
		}
		case "permission.created":
		case "permission.updated": {
			const key = s(d.key);
			if (!id || !key) return ignore();
			plan.statements.push(
				sql`
					INSERT INTO permissions (id, key, name, description, source_updated_at, created_at, updated_at)
					VALUES (${id}, ${key}, ${s(d.name) ?? key}, ${s(d.description)}, ${objectTs}, ${ms(n(d.created_at)) ?? now}, ${now})
					ON CONFLICT (key) DO UPDATE SET name = excluded.name, description = excluded.description,
						source_updated_at = excluded.source_updated_at, updated_at = excluded.updated_at
					WHERE permissions.is_system = 0 AND permissions.deleted_at IS NULL
						AND excluded.source_updated_at >= permissions.source_updated_at`,
			);
			plan.staleCheck = staleRow("permissions", "key", key, objectTs, true);
			plan.invalidate = { all: true };
			return plan;
		}
		default:
			plan.organizationId = s(d.organization_id) ?? s(obj(d.organization).id);
			return ignore();
	}
}
