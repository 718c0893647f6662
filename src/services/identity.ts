import { and, asc, count, desc, eq, isNull, type SQL, sql } from "drizzle-orm";
import { normalizeRoleKey } from "../auth/claims";
import { runBatch } from "../db/batch";
import type { Database } from "../db/client";
import { keysetAfter } from "../db/keyset";
import { invitations, memberships, organizations, users } from "../db/schema";
import type { Env } from "../env";
import { ApiError } from "../errors";
import { decodeCursor, page } from "../lib/cursor";
import { TtlCache } from "../lib/ttl-cache";
import { invalidateAccess, permissionsOfRole } from "./access";
import { forgetKeys, keysWithinCreator } from "./api-keys";
import type { Data } from "../lib/payload";
import { identifierEmail } from "./clerk-sync/memberships";
import {
	type ClerkInvitation,
	type ClerkMembership,
	createOrganizationInvitation,
	deleteOrganizationMembership,
	revokeOrganizationInvitation,
	updateOrganizationMembership,
} from "./clerk-api";
import { type AuditInput, changeOutbox } from "./events-bus";
import { type ChangeLog, collectOutbox } from "./outbox";
import { directoryChanged } from "../tenant-store/directory";
import type { SeatStanding } from "../tenant-store/host";
import { cheapestPlanWith, limitsFor, PLANS, planOf, upgradeFor } from "./plans";

/**
 * Reads over the organizations, memberships and invitations mirrored from Clerk, and the member and
 * invitation changes made through Clerk's Backend API (Clerk stays the source of truth; see clerk-api.ts).
 */

interface Member {
	id: string;
	userId: string;
	role: string;
	email: string | null;
	firstName: string | null;
	lastName: string | null;
	createdAt: number;
}

/**
 * The query of one page of members: memberships alone (each carries its user's email, names and
 * deletion, see clerk-sync/shared.ts syncMemberUser), walking memberships_org_active_idx, so a page
 * reads limit + 1 rows at any depth.
 */
export function membersPageQuery(db: Database, orgId: string, q: { cursor?: string; limit: number }) {
	return db
		.select({
			id: memberships.id,
			userId: memberships.userId,
			role: memberships.role,
			email: memberships.userEmail,
			firstName: memberships.userFirstName,
			lastName: memberships.userLastName,
			createdAt: memberships.createdAt,
		})
		.from(memberships)
		.where(
			and(
				eq(memberships.organizationId, orgId),
				// The partial index's condition, so that SQLite walks it.
				isNull(memberships.deletedAt),
				isNull(memberships.userDeletedAt),
				keysetAfter(memberships.createdAt, memberships.id, decodeCursor(q.cursor), "asc"),
			),
		)
		.orderBy(asc(memberships.createdAt), asc(memberships.id))
		.limit(q.limit + 1);
}

/** Active members of an organization (active users only), oldest first, keyset-paginated on (createdAt, id). */
export async function listMembers(
	db: Database,
	orgId: string,
	q: { cursor?: string; limit: number },
): Promise<{ data: Member[]; nextCursor: string | null }> {
	return page(await membersPageQuery(db, orgId, q), q.limit, (r) => ({ k: r.createdAt, id: r.id }));
}

interface OrgAdminData {
	organizationId: string;
	memberCount: number;
	admins: number;
	pendingInvitations: number;
}

/** Member (active users only), admin and pending-invitation counts of an organization, in one round trip. */
export async function orgAdminData(db: Database, orgId: string): Promise<OrgAdminData> {
	const [[members], [pending]] = await db.batch([
		db
			.select({
				total: count(),
				admins: sql<number>`coalesce(sum(case when ${memberships.role} = 'org:admin' then 1 else 0 end), 0)`,
			})
			.from(memberships)
			// Members whose user was deleted in Clerk are not members any more (as in listMembers).
			.innerJoin(users, eq(users.id, memberships.userId))
			.where(and(eq(memberships.organizationId, orgId), isNull(memberships.deletedAt), isNull(users.deletedAt))),
		db
			.select({ total: count() })
			.from(invitations)
			.where(and(eq(invitations.organizationId, orgId), pendingNow(Date.now()))),
	]);
	return {
		organizationId: orgId,
		memberCount: members?.total ?? 0,
		admins: Number(members?.admins ?? 0),
		pendingInvitations: pending?.total ?? 0,
	};
}

const ADMIN = "org:admin";

// ---------------------------------------------------------------------------------------------------
// The caller's organizations

interface MyOrganization {
	id: string;
	slug: string | null;
	name: string | null;
	role: string;
}

/**
 * Every organization the user is an active member of (not deleted), with their role there, in the
 * order they joined, keyset-paginated on the membership's (createdAt, id).
 */
export async function listMyOrganizations(
	db: Database,
	userId: string,
	q: { cursor?: string; limit: number },
): Promise<{ data: MyOrganization[]; nextCursor: string | null }> {
	const rows = await db
		.select({
			id: organizations.id,
			slug: organizations.slug,
			name: organizations.name,
			role: memberships.role,
			joinedAt: memberships.createdAt,
			membershipId: memberships.id,
		})
		.from(memberships)
		.innerJoin(organizations, eq(organizations.id, memberships.organizationId))
		.where(
			and(
				eq(memberships.userId, userId),
				isNull(memberships.deletedAt),
				isNull(memberships.userDeletedAt),
				isNull(organizations.deletedAt),
				keysetAfter(memberships.createdAt, memberships.id, decodeCursor(q.cursor), "asc"),
			),
		)
		.orderBy(asc(memberships.createdAt), asc(memberships.id))
		.limit(q.limit + 1);
	const p = page(rows, q.limit, (r) => ({ k: r.joinedAt, id: r.membershipId }));
	return { data: p.data.map((r) => ({ id: r.id, slug: r.slug, name: r.name, role: r.role })), nextCursor: p.nextCursor };
}

// ---------------------------------------------------------------------------------------------------
// Seats

/**
 * Seats: the plan's seats (free 5, pro 50, enterprise 1,000) or the organization's seat_limit override
 * hold its active members plus its pending invitations.
 * - Inviting past the seats is refused with 402 naming the cheapest higher plan that has enough, if any:
 *   none has with an override, which a plan change keeps (assertSeatFree).
 * - Members past the seats (added in Clerk directly, or left over after a downgrade) are not served:
 *   members take seats admins first, then in the order they joined (membership createdAt, then id); a
 *   member whose place is beyond the seats gets 402 on every tenant route (seatStanding, checked by
 *   middleware/seats.ts). Admins come first so someone can always remove members or upgrade.
 *   Pending invitations do not take a served place: a member who joined is served before an invitee.
 */
interface SeatUsage {
	plan: string;
	/** The seat_limit override (null: the plan's seats). */
	seatLimit: number | null;
	seats: number;
	members: number;
	pendingInvitations: number;
}

const activeMember = (orgId: string) =>
	sql`FROM memberships m JOIN users u ON u.id = m.user_id AND u.deleted_at IS NULL
		WHERE m.organization_id = ${orgId} AND m.deleted_at IS NULL`;

export async function seatUsage(db: Database, orgId: string): Promise<SeatUsage> {
	const row = await db.get<{ plan: string | null; seatLimit: number | null; members: number; pending: number }>(sql`
		SELECT o.plan AS plan, o.seat_limit AS seatLimit,
			(SELECT count(*) ${activeMember(orgId)}) AS members,
			(SELECT count(*) FROM invitations WHERE ${invitations.organizationId} = ${orgId} AND ${pendingNow(Date.now())}) AS pending
		FROM organizations o WHERE o.id = ${orgId}`);
	return {
		plan: planOf(row?.plan),
		seatLimit: row?.seatLimit ?? null,
		seats: limitsFor(row?.plan, row).seats,
		members: row?.members ?? 0,
		pendingInvitations: row?.pending ?? 0,
	};
}

/** What to tell an organization that needs `needed` seats. */
function upgradeHint(s: Pick<SeatUsage, "plan" | "seatLimit">, needed: number): string {
	const better = upgradeFor(s.plan, "seats", needed, s);
	return better
		? `upgrade to ${better} (${PLANS[better].limits.seats} seats)`
		: "contact support to raise the organization's seat limit";
}

/** 402 unless one more seat is free (members + pending invitations < seats). */
async function assertSeatFree(db: Database, orgId: string): Promise<void> {
	const u = await seatUsage(db, orgId);
	const used = u.members + u.pendingInvitations;
	if (used + 1 > u.seats) {
		throw new ApiError(
			"PAYMENT_REQUIRED",
			`the ${u.plan} plan has ${u.seats} seats and all are taken (${u.members} members, ${u.pendingInvitations} pending invitations); ${upgradeHint(u, used + 1)}`,
		);
	}
}


const SEAT_CACHE_TTL_MS = 5_000;
// Per (org, user) in this isolate, like the access cache; changes made here forget the organization.
const seatCache = new TtlCache<string, SeatStanding>(10_000);

function forgetSeats(orgId: string): void {
	seatCache.deleteWhere((k) => k.startsWith(`${orgId}|`));
}

/** The member's place in seat order and whether it is within the seats; served when not a D1 member. */
export async function seatStanding(db: Database, orgId: string, userId: string, cached = true): Promise<SeatStanding> {
	const key = `${orgId}|${userId}`;
	const hit = cached ? seatCache.get(key) : undefined;
	if (hit) return hit;
	const row = await db.get<{ plan: string | null; seatLimit: number | null; members: number; ahead: number }>(sql`
		SELECT o.plan AS plan, o.seat_limit AS seatLimit,
			(SELECT count(*) ${activeMember(orgId)}) AS members,
			(SELECT count(*) ${activeMember(orgId)} AND (
				(m.role = ${ADMIN}) > (me.role = ${ADMIN})
				OR ((m.role = ${ADMIN}) = (me.role = ${ADMIN}) AND (m.created_at, m.id) < (me.created_at, me.id)))) AS ahead
		FROM organizations o
		JOIN memberships me ON me.organization_id = o.id AND me.user_id = ${userId} AND me.deleted_at IS NULL
		WHERE o.id = ${orgId}`);
	const seats = limitsFor(row?.plan, row).seats;
	const standing: SeatStanding = {
		served: !row || row.ahead < seats,
		place: row ? row.ahead + 1 : 0,
		members: row?.members ?? 0,
		seats,
		plan: planOf(row?.plan),
		seatLimit: row?.seatLimit ?? null,
	};
	seatCache.set(key, standing, SEAT_CACHE_TTL_MS);
	return standing;
}

/** The 402 for a member past the seats. */
export function seatRefusal(s: SeatStanding): ApiError {
	return new ApiError(
		"PAYMENT_REQUIRED",
		`this organization has ${s.members} members but the ${s.plan} plan has ${s.seats} seats; members beyond the seats are not served (admins first, then in the order they joined): an admin can remove members or ${upgradeHint(s, s.members)}`,
	);
}

// ---------------------------------------------------------------------------------------------------
// Roles

/** The role key to assign: 400 when no such role exists here, 402 for a custom role the plan lacks. */
async function assignableRole(db: Database, orgId: string, plan: string, role: string): Promise<string> {
	const key = normalizeRoleKey(role);
	const row = await db.get<{ isSystem: number }>(sql`
		SELECT is_system AS isSystem FROM roles
		WHERE key = ${key} AND (organization_id IS NULL OR organization_id = ${orgId}) AND deleted_at IS NULL
		ORDER BY is_system DESC LIMIT 1`);
	if (!row) {
		throw new ApiError("VALIDATION_FAILED", `role ${key} does not exist`, {
			errors: [{ path: "role", message: "unknown role" }],
		});
	}
	const p = planOf(plan);
	if (!row.isSystem && !PLANS[p].features.custom_roles) {
		throw new ApiError(
			"PAYMENT_REQUIRED",
			`custom roles are not in the ${p} plan; upgrade to ${cheapestPlanWith("custom_roles")}`,
		);
	}
	return key;
}

// ---------------------------------------------------------------------------------------------------
// Invitations

export interface Invitation {
	id: string;
	emailAddress: string;
	role: string;
	status: string;
	createdAt: number;
	updatedAt: number;
}

/** Clerk sends ms; tolerate seconds. */
const ms = (v: number | null | undefined, fallback: number) =>
	typeof v === "number" && Number.isFinite(v) ? (v < 1e12 ? v * 1000 : v) : fallback;

/** Clerk's expires_at of an invitation (ms), when it gives one. */
const expiresOf = (i: ClerkInvitation): number | null => (typeof i.expires_at === "number" ? ms(i.expires_at, 0) : null);

/** A pending invitation still open at `now`: Clerk sends no webhook when one expires (its expires_at passes). */
const pendingNow = (now: number) => sql`(${invitations.status} = 'pending' AND (${invitations.expiresAt} IS NULL OR ${invitations.expiresAt} > ${now}))`;

/** The status an invitation has at `now`: a pending one past its expires_at is expired (SQL, for lists; statusAt for a row read). */
const statusNow = (now: number) =>
	sql<string>`CASE WHEN ${invitations.status} = 'pending' AND ${invitations.expiresAt} <= ${now} THEN 'expired' ELSE ${invitations.status} END`;
const statusAt = (row: { status: string; expiresAt: number | null }, now: number) =>
	row.status === "pending" && row.expiresAt !== null && row.expiresAt <= now ? "expired" : row.status;

function invitationView(i: ClerkInvitation): Invitation {
	const now = Date.now();
	return {
		id: i.id,
		emailAddress: i.email_address,
		role: normalizeRoleKey(i.role),
		status: i.status,
		createdAt: ms(i.created_at, now),
		updatedAt: ms(i.updated_at, now),
	};
}

/**
 * Records a change Clerk accepted: the mirror statement and the change's audit entry in one batch. The
 * entry is written whether or not the mirror statement applies (the sync may have recorded a newer
 * state already): the change was made in Clerk either way. Relayed through `log` (the webhook sync
 * later adds its own system entry).
 */
async function recordChange(db: Database, mirror: SQL, log: ChangeLog, audit: AuditInput): Promise<void> {
	collectOutbox(log, await runBatch(db.$client, [mirror, ...changeOutbox(log, audit)]));
}

/**
 * Clerk's answer recorded in the mirror right away (seat counting must see a new invitation before its
 * webhook arrives), ordered by Clerk's updated_at exactly like the organizationInvitation.* sync, with
 * the change's audit entry.
 */
async function recordInvitation(
	db: Database,
	orgId: string,
	i: Invitation,
	expiresAt: number | null,
	log: ChangeLog,
	audit: Omit<AuditInput, "organizationId">,
): Promise<void> {
	await recordChange(
		db,
		sql`
		INSERT INTO invitations (id, organization_id, email, role, status, expires_at, source_updated_at, created_at, updated_at)
		VALUES (${i.id}, ${orgId}, ${i.emailAddress}, ${i.role}, ${i.status}, ${expiresAt}, ${i.updatedAt}, ${i.createdAt}, ${i.updatedAt})
		ON CONFLICT (id) DO UPDATE SET status = excluded.status, role = excluded.role,
			expires_at = coalesce(excluded.expires_at, invitations.expires_at),
			source_updated_at = excluded.source_updated_at, updated_at = excluded.updated_at
		WHERE excluded.source_updated_at >= invitations.source_updated_at`,
		log,
		{ organizationId: orgId, targetType: "invitation", targetId: i.id, ...audit },
	);
	forgetSeats(orgId);
}

/**
 * The organization's invitations from D1 (kept by the organizationInvitation.* sync and by the changes
 * made here), newest first, optionally one status, keyset-paginated on (createdAt, id).
 */
export async function listInvitations(
	db: Database,
	orgId: string,
	q: { cursor?: string; limit: number; status?: string },
): Promise<{ data: Invitation[]; nextCursor: string | null }> {
	const now = Date.now();
	const rows = await db
		.select({
			id: invitations.id,
			emailAddress: invitations.email,
			role: invitations.role,
			status: statusNow(now),
			createdAt: invitations.createdAt,
			updatedAt: invitations.updatedAt,
		})
		.from(invitations)
		.where(
			and(
				eq(invitations.organizationId, orgId),
				isNull(invitations.deletedAt),
				q.status ? sql`${statusNow(now)} = ${q.status}` : undefined,
				keysetAfter(invitations.createdAt, invitations.id, decodeCursor(q.cursor), "desc"),
			),
		)
		.orderBy(desc(invitations.createdAt), desc(invitations.id))
		.limit(q.limit + 1);
	return page(rows, q.limit, (r) => ({ k: r.createdAt, id: r.id }));
}

/** Who makes a change: Clerk accepts an inviter/requesting user only when they are an admin there. */
export interface Caller {
	userId: string;
	/** null for an API key (no role). */
	role: string | null;
	plan: string;
	/** What the caller may do here (its role's and token's permissions, or an API key's own). */
	permissions: readonly string[];
}

/**
 * Only an admin hands out or takes away more than it holds: any other caller with org:members:manage (a
 * custom role, an API key) may grant a role, or change or remove a member holding one, only when every
 * permission of that role is its own, and never org:admin. 403 otherwise (the same rule as an API key's
 * permissions, which stay a subset of its creator's).
 */
async function assertWithinCaller(db: Database, orgId: string, caller: Caller, role: string, what: string): Promise<void> {
	if (caller.role === ADMIN) return;
	if (role === ADMIN) throw new ApiError("FORBIDDEN", `only an admin can ${what} the ${ADMIN} role`);
	const missing = (await permissionsOfRole(db, orgId, role)).filter((p) => !caller.permissions.includes(p));
	if (missing.length > 0) {
		throw new ApiError("FORBIDDEN", `cannot ${what} role ${role}: it holds permissions the caller does not (${missing.sort().join(", ")})`);
	}
}

/**
 * Invites someone through Clerk (createOrganizationInvitation) after the role and seat checks; the
 * mirror row and the `invitation.created` entry are written in one batch.
 */
export async function inviteMember(
	db: Database,
	env: Env,
	orgId: string,
	caller: Caller,
	input: { emailAddress: string; role: string },
	log: ChangeLog,
): Promise<Invitation> {
	const role = await assignableRole(db, orgId, caller.plan, input.role);
	await assertWithinCaller(db, orgId, caller, role, "grant");
	await assertSeatFree(db, orgId);
	const clerk = await createOrganizationInvitation(env, orgId, {
		emailAddress: input.emailAddress,
		role,
		inviterUserId: caller.role === ADMIN ? caller.userId : null,
	});
	const created = invitationView(clerk);
	await recordInvitation(db, orgId, created, expiresOf(clerk), log, { action: "invitation.created", after: created });
	return created;
}

/**
 * Revokes a pending invitation through Clerk. The invitation must be this organization's in D1 (404
 * otherwise, also for another organization's id); Clerk refuses one that is no longer pending. The
 * mirror row and the `invitation.revoked` entry are written in one batch.
 */
export async function revokeInvitation(
	db: Database,
	env: Env,
	orgId: string,
	invitationId: string,
	caller: Caller,
	log: ChangeLog,
): Promise<{ before: Invitation; after: Invitation }> {
	const [row] = await db
		.select()
		.from(invitations)
		.where(and(eq(invitations.id, invitationId), eq(invitations.organizationId, orgId), isNull(invitations.deletedAt)));
	if (!row) throw new ApiError("NOT_FOUND", "invitation not found");
	const status = statusAt(row, Date.now());
	if (status !== "pending") throw new ApiError("CONFLICT", `the invitation is ${status}, not pending`);
	await assertWithinCaller(db, orgId, caller, row.role, "revoke an invitation for");
	const before: Invitation = {
		id: row.id,
		emailAddress: row.email,
		role: row.role,
		status: row.status,
		createdAt: row.createdAt,
		updatedAt: row.updatedAt,
	};
	const revoked = await revokeOrganizationInvitation(env, orgId, invitationId, caller.role === ADMIN ? caller.userId : null);
	const after = invitationView(revoked);
	await recordInvitation(db, orgId, after, expiresOf(revoked), log, { action: "invitation.revoked", before, after });
	return { before, after };
}

// ---------------------------------------------------------------------------------------------------
// Members

/** An active member (active user) of the organization with the number of active admins; 404 when not one. */
async function memberAndAdmins(db: Database, orgId: string, userId: string): Promise<{ role: string; admins: number }> {
	const row = await db.get<{ role: string; admins: number }>(sql`
		SELECT m.role AS role,
			(SELECT count(*) ${activeMember(orgId)} AND m.role = ${ADMIN}) AS admins
		FROM memberships m JOIN users u ON u.id = m.user_id AND u.deleted_at IS NULL
		WHERE m.organization_id = ${orgId} AND m.user_id = ${userId} AND m.deleted_at IS NULL`);
	if (!row) throw new ApiError("NOT_FOUND", "member not found");
	return row;
}

function assertNotLastAdmin(current: { role: string; admins: number }, what: string): void {
	if (current.role === ADMIN && current.admins <= 1) {
		throw new ApiError("CONFLICT", `cannot ${what} the organization's last admin: make another member an admin first`);
	}
}

function memberView(m: ClerkMembership, fallbackUserId: string) {
	const u = m.public_user_data ?? ({} as ClerkMembership["public_user_data"]);
	return {
		id: m.id,
		userId: u.user_id ?? fallbackUserId,
		role: normalizeRoleKey(m.role),
		email: identifierEmail(u as Data),
		firstName: u.first_name ?? null,
		lastName: u.last_name ?? null,
		createdAt: ms(m.created_at, Date.now()),
	};
}
export type ChangedMember = ReturnType<typeof memberView>;

/**
 * Clerk's answer in the mirror right away, ordered by Clerk's updated_at like the membership sync,
 * with the change's audit entry (target: the membership, by user id).
 */
async function recordMembership(
	db: Database,
	env: Env,
	orgId: string,
	userId: string,
	m: ClerkMembership,
	deleted: boolean,
	log: ChangeLog,
	audit: Pick<AuditInput, "action" | "before" | "after">,
) {
	const ts = ms(m.updated_at, Date.now());
	await recordChange(
		db,
		sql`
		UPDATE memberships SET role = ${normalizeRoleKey(m.role)}, source_updated_at = ${ts}, updated_at = ${Date.now()},
			deleted_at = ${deleted ? ts : null}
		WHERE organization_id = ${orgId} AND user_id = ${userId} AND deleted_at IS NULL AND source_updated_at <= ${ts}`,
		log,
		{ organizationId: orgId, targetType: "membership", targetId: userId, ...audit },
	);
	// The keys the member made hold no more than the member now does (Clerk's webhook does it again).
	await db.run(keysWithinCreator(userId, Date.now(), orgId));
	forgetKeys();
	invalidateAccess(orgId, userId);
	forgetSeats(orgId);
	// The tenant's store forgets its mirrored answer for the member at once. Clerk's membership webhook tells
	// it again when consumed; should both fail, the mirror expires (tenant-store/object.ts MIRROR_TTL_MS).
	await directoryChanged(env, orgId).catch(() => undefined);
}

/**
 * Changes a member's role through Clerk; 409 when that would leave the organization without an admin.
 * The mirror and the `member.role_changed` entry are written in one batch.
 */
export async function changeMemberRole(
	db: Database,
	env: Env,
	orgId: string,
	userId: string,
	caller: Caller,
	role: string,
	log: ChangeLog,
): Promise<{ before: string; member: ChangedMember }> {
	const next = await assignableRole(db, orgId, caller.plan, role);
	const current = await memberAndAdmins(db, orgId, userId);
	await assertWithinCaller(db, orgId, caller, current.role, "change a member with");
	await assertWithinCaller(db, orgId, caller, next, "grant");
	if (next !== ADMIN) assertNotLastAdmin(current, "demote");
	const updated = await updateOrganizationMembership(env, orgId, userId, next);
	const member = memberView(updated, userId);
	await recordMembership(db, env, orgId, userId, updated, false, log, {
		action: "member.role_changed",
		before: { userId, role: current.role },
		after: { userId, role: member.role },
	});
	return { before: current.role, member };
}

/**
 * Removes a member through Clerk; 409 for the organization's last admin. The mirror and the
 * `member.removed` entry are written in one batch.
 */
export async function removeMember(
	db: Database,
	env: Env,
	orgId: string,
	userId: string,
	caller: Caller,
	log: ChangeLog,
): Promise<{ before: string; member: ChangedMember }> {
	const current = await memberAndAdmins(db, orgId, userId);
	await assertWithinCaller(db, orgId, caller, current.role, "remove a member with");
	assertNotLastAdmin(current, "remove");
	const removed = await deleteOrganizationMembership(env, orgId, userId);
	await recordMembership(db, env, orgId, userId, removed, true, log, { action: "member.removed", before: { userId, role: current.role } });
	return { before: current.role, member: memberView(removed, userId) };
}
