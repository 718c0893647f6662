import { and, eq, type SQL, sql } from "drizzle-orm";
import type { AuthContext } from "../auth/claims";
import { runBatch } from "../db/batch";
import type { Database } from "../db/client";
import { memberships, organizations, users } from "../db/schema";
import { ApiError } from "../errors";
import { TtlCache } from "../lib/ttl-cache";
import { syncMemberUser } from "./clerk-sync/shared";
import { limitsFor, type PlanLimits } from "./plans";

interface OrgSummary {
	id: string;
	name: string | null;
	slug: string | null;
	imageUrl: string | null;
	plan: string;
	createdAt: number;
	updatedAt: number;
}

/** The caller's standing in one organization, resolved from D1 (falling back to the token). */
export interface OrgAccess {
	organization: OrgSummary;
	limits: PlanLimits;
	/** The member's role; null for an API key (it has permissions, no role). */
	role: string | null;
	permissions: string[];
	source: "d1" | "token" | "api_key";
	/** Suspended by an operator: its tenant routes answer 403 ORG_SUSPENDED (middleware/authorize.ts). */
	suspended: boolean;
}

/** What the directory says of one principal in one organization (the tenant store mirrors it). */
export interface Lookup {
	organization: OrgSummary | null;
	limits: PlanLimits;
	suspended: boolean;
	/** undefined: no row at all; null role: a deleted (tombstoned) membership. */
	membership: { role: string | null } | undefined;
	rolePermissions: string[];
}

const ACCESS_CACHE_TTL_MS = 5_000;
// Organization + membership lookups, 5 s per (org, user) in this isolate. The webhook consumer
// evicts entries it changes (see invalidateAccess); other isolates see a change within 5 s.
const accessCache = new TtlCache<string, Lookup>(10_000);

export function invalidateAccess(orgId: string, userId?: string): void {
	if (userId) accessCache.delete(`${orgId}|${userId}`);
	else accessCache.deleteWhere((k) => k.startsWith(`${orgId}|`));
}

export function clearAccessCache(): void {
	accessCache.clear();
}

async function lookup(db: Database, orgId: string, userId: string): Promise<Lookup> {
	const key = `${orgId}|${userId}`;
	const hit = accessCache.get(key);
	if (hit) return hit;
	const result = await directoryLookup(db, orgId, userId);
	accessCache.set(key, result, ACCESS_CACHE_TTL_MS);
	return result;
}

/** Where resolveOrgAccess reads the directory's facts from (default: D1 with the isolate's 5 s cache). */
export type LookupSource = (orgId: string, userId: string) => Promise<Lookup>;

/**
 * What `userId`'s live membership of the organization grants (its role: the organization's own or a system
 * one), as a query of `key`s; `orgId` may be SQL (a column of an enclosing statement).
 */
export const membershipPermissionsSql = (orgId: string | SQL, userId: string | SQL): SQL => sql`SELECT DISTINCT p.key AS key FROM memberships m
	JOIN roles r ON r.key = m.role AND (r.organization_id IS NULL OR r.organization_id = m.organization_id)
		AND r.deleted_at IS NULL
	JOIN role_permissions rp ON rp.role_id = r.id
	JOIN permissions p ON p.id = rp.permission_id AND p.deleted_at IS NULL
	WHERE m.organization_id = ${orgId} AND m.user_id = ${userId} AND m.deleted_at IS NULL AND m.user_deleted_at IS NULL`;

/** The directory's facts for (organization, principal), read from D1 now (no cache). */
export async function directoryLookup(db: Database, orgId: string, userId: string): Promise<Lookup> {
	// One round trip: the organization, the membership (tombstones included) and its role's permissions.
	const [orgRes, memberRes, permRes] = await runBatch(db.$client, [
		sql`SELECT id, name, slug, image_url AS imageUrl, plan, created_at AS createdAt, updated_at AS updatedAt,
			rate_limit_per_minute AS rateLimitPerMinute, user_rate_limit_per_minute AS userRateLimitPerMinute,
			monthly_quota AS monthlyQuota, seat_limit AS seatLimit, suspended_at AS suspendedAt
			FROM organizations WHERE id = ${orgId} AND deleted_at IS NULL`,
		// A deleted user's memberships count as ended (tombstones: token claims do not revive them).
		sql`SELECT role, coalesce(deleted_at, user_deleted_at) AS deletedAt FROM memberships WHERE organization_id = ${orgId} AND user_id = ${userId}`,
		membershipPermissionsSql(orgId, userId),
	]);
	const orgRows = (orgRes?.results ?? []) as unknown as (OrgSummary & {
		rateLimitPerMinute: number | null;
		userRateLimitPerMinute: number | null;
		monthlyQuota: number | null;
		seatLimit: number | null;
		suspendedAt: number | null;
	})[];
	const memberRows = (memberRes?.results ?? []) as unknown as { role: string; deletedAt: number | null }[];
	const permRows = (permRes?.results ?? []) as unknown as { key: string }[];
	const m = memberRows[0];
	const o = orgRows[0];
	const result: Lookup = {
		organization: o
			? {
					id: o.id,
					name: o.name,
					slug: o.slug,
					imageUrl: o.imageUrl,
					plan: o.plan,
					createdAt: o.createdAt,
					updatedAt: o.updatedAt,
				}
			: null,
		limits: limitsFor(o?.plan, o ?? {}),
		suspended: o?.suspendedAt != null,
		membership: m === undefined ? undefined : { role: m.deletedAt === null ? m.role : null },
		rolePermissions: permRows.map((r) => r.key),
	};
	return result;
}

/** The permissions a role grants in the organization (its own custom roles, or a system role). */
export async function permissionsOfRole(db: Database, orgId: string, role: string): Promise<string[]> {
	const rows = await db.all<{ key: string }>(sql`
		SELECT p.key AS key FROM roles r
		JOIN role_permissions rp ON rp.role_id = r.id
		JOIN permissions p ON p.id = rp.permission_id AND p.deleted_at IS NULL
		WHERE r.key = ${role} AND (r.organization_id IS NULL OR r.organization_id = ${orgId}) AND r.deleted_at IS NULL`);
	return rows.map((r) => r.key);
}

const NONE: readonly string[] = [];
// The last merge of a cached lookup's role permissions with a token's, by lookup: a cached lookup and a
// cached verified token are the same objects request after request, so their union is built once.
const merges = new WeakMap<Lookup, { extra: readonly string[]; permissions: string[] }>();

/** The role's permissions and the token's extra ones, sorted, without duplicates (never mutated by callers). */
function mergedPermissions(found: Lookup, extra: readonly string[]): string[] {
	const last = merges.get(found);
	if (last?.extra === extra) return last.permissions;
	// Shared by every request of this lookup and token: frozen, so a caller that tried to change it would throw.
	const permissions = Object.freeze([...new Set([...found.rolePermissions, ...extra])].sort()) as string[];
	merges.set(found, { extra, permissions });
	return permissions;
}

/**
 * Resolves what `auth` may do in `orgId`. D1 (synced from Clerk webhooks) is the source of truth.
 * Only for the token's own active organization, and only while D1 has no membership row at all,
 * the token's org claims are trusted and the membership is upserted as a placeholder that the
 * webhook later overwrites. 404 for an unknown or deleted organization, 403 for a non-member.
 */
export async function resolveOrgAccess(
	db: Database,
	auth: AuthContext,
	orgId: string,
	source: LookupSource = (o, u) => lookup(db, o, u),
): Promise<OrgAccess> {
	const found = await source(orgId, auth.userId);
	// An API key (principal apikey:<id>, never a member) acts in its own organization only, with exactly
	// its own permissions and no role; any other organization answers as it does to a non-member.
	if (auth.apiKey) {
		if (auth.apiKey.organizationId === orgId && found.organization) {
			return { organization: found.organization, limits: found.limits, role: null, permissions: auth.apiKey.permissions, source: "api_key", suspended: found.suspended };
		}
		if (!found.organization) throw new ApiError("NOT_FOUND", "organization not found");
		throw new ApiError("FORBIDDEN", "not a member of this organization");
	}
	const tokenOrg = auth.orgId === orgId && auth.orgRole !== null;

	if (found.membership?.role) {
		const role = found.membership.role;
		if (!found.organization) throw new ApiError("NOT_FOUND", "organization not found");
		// The token's own permissions count only while it agrees with D1 on the role.
		const extra = tokenOrg && auth.orgRole === role ? auth.orgPermissions : NONE;
		return {
			organization: found.organization,
			limits: found.limits,
			role,
			permissions: mergedPermissions(found, extra),
			source: "d1",
			suspended: found.suspended,
		};
	}

	if (found.membership === undefined && tokenOrg) {
		const organization = found.organization ?? (await upsertPlaceholderOrg(db, orgId, auth.orgSlug));
		if (!organization) throw new ApiError("NOT_FOUND", "organization not found");
		const role = auth.orgRole as string;
		await upsertPlaceholderMembership(db, orgId, auth.userId, role);
		accessCache.delete(`${orgId}|${auth.userId}`);
		const rolePerms = await permissionsOfRole(db, orgId, role);
		return {
			organization,
			limits: found.limits,
			role,
			permissions: [...new Set([...rolePerms, ...auth.orgPermissions])],
			source: "token",
			suspended: found.suspended,
		};
	}

	if (!found.organization) throw new ApiError("NOT_FOUND", "organization not found");
	throw new ApiError("FORBIDDEN", "not a member of this organization");
}

/** The caller's standing in the token's active organization; null when there is none or they no longer belong to it. */
export async function activeOrgAccess(db: Database, auth: AuthContext): Promise<OrgAccess | null> {
	if (!auth.orgId) return null;
	try {
		return await resolveOrgAccess(db, auth, auth.orgId);
	} catch (err) {
		if (err instanceof ApiError && (err.code === "FORBIDDEN" || err.code === "NOT_FOUND")) return null;
		throw err;
	}
}

async function upsertPlaceholderOrg(db: Database, orgId: string, slug: string | null): Promise<OrgSummary | null> {
	const now = Date.now();
	await db
		.insert(organizations)
		.values({ id: orgId, slug, sourceUpdatedAt: 0, createdAt: now, updatedAt: now })
		.onConflictDoNothing();
	// The summary's columns only, as directoryLookup reads them: the answer is rendered from it.
	const { id, name, slug: s, imageUrl, plan, createdAt, updatedAt } = organizations;
	const [row] = await db
		.select({ id, name, slug: s, imageUrl, plan, createdAt, updatedAt })
		.from(organizations)
		.where(and(eq(organizations.id, orgId), sql`${organizations.deletedAt} IS NULL`));
	return row ?? null;
}

async function upsertPlaceholderMembership(db: Database, orgId: string, userId: string, role: string) {
	const now = Date.now();
	await runBatch(db.$client, [
		db.insert(users).values({ id: userId, sourceUpdatedAt: 0, createdAt: now, updatedAt: now }).onConflictDoNothing().getSQL(),
		db
			.insert(memberships)
			.values({
				id: `pending_${orgId}_${userId}`,
				organizationId: orgId,
				userId,
				role,
				sourceUpdatedAt: 0,
				createdAt: now,
				updatedAt: now,
			})
			.onConflictDoNothing()
			.getSQL(),
		// A user already known (from its own events) shows in the member list with its email and names.
		syncMemberUser(userId),
	]);
}
