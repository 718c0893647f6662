import { sql } from "drizzle-orm";
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

// Identity, mirrored from Clerk: users, organizations, roles and permissions, memberships, invitations.

/**
 * Ordering columns shared by every table mirrored from Clerk.
 * `sourceUpdatedAt` is Clerk's own clock (ms) for the last applied change: an
 * event older than it never overwrites the row (events arrive out of order).
 * `sourceUpdatedAt = 0` marks a placeholder created before its real event.
 */
const mirrored = {
	sourceUpdatedAt: integer("source_updated_at").notNull().default(0),
	createdAt: integer("created_at").notNull(),
	updatedAt: integer("updated_at").notNull(),
	deletedAt: integer("deleted_at"),
};

export const users = sqliteTable(
	"users",
	{
		id: text("id").primaryKey(),
		email: text("email"),
		firstName: text("first_name"),
		lastName: text("last_name"),
		imageUrl: text("image_url"),
		...mirrored,
	},
	(t) => [index("users_email_idx").on(t.email)],
);

export const organizations = sqliteTable(
	"organizations",
	{
		id: text("id").primaryKey(),
		name: text("name"),
		slug: text("slug"),
		imageUrl: text("image_url"),
		plan: text("plan").notNull().default("free"),
		/** Per-organization overrides of the plan's rate limits (requests per minute); null = plan default. */
		rateLimitPerMinute: integer("rate_limit_per_minute"),
		/** Per-organization override of the plan's monthly API quota; null = plan default. */
		monthlyQuota: integer("monthly_quota"),
		userRateLimitPerMinute: integer("user_rate_limit_per_minute"),
		/** Per-organization override of the plan's seats (members + pending invitations); null = plan default. */
		seatLimit: integer("seat_limit"),
		/** Set by an operator: while set, the organization's tenant routes answer 403 ORG_SUSPENDED. */
		suspendedAt: integer("suspended_at"),
		/** Where the tenant's data lives; changeable by an operator only while the tenant has no data. */
		dataRegion: text("data_region", { enum: ["default", "eu"] }).notNull().default("default"),
		/**
		 * Where the tenant's data is served from (tenant-store/directory.ts): null or 'store' its own store,
		 * 'd1' the shared tables until the upgrade job moves it, 'migrating', 'deleted' (offboarded).
		 */
		storeState: text("store_state", { enum: ["store", "d1", "migrating", "deleted"] }),
		/** The schema version the tenant's store last reported (the cron's rollout nudge records it). */
		storeSchemaVersion: integer("store_schema_version"),
		...mirrored,
	},
	(t) => [index("organizations_slug_idx").on(t.slug)],
);

/** System roles have organizationId = null; custom roles may be instance-wide (null) or per organization. */
export const roles = sqliteTable(
	"roles",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id"),
		key: text("key").notNull(),
		name: text("name").notNull(),
		description: text("description"),
		isSystem: integer("is_system", { mode: "boolean" }).notNull().default(false),
		...mirrored,
	},
	(t) => [
		uniqueIndex("roles_org_key_uq").on(t.organizationId, t.key),
		uniqueIndex("roles_global_key_uq").on(t.key).where(sql`organization_id IS NULL`),
	],
);

export const permissions = sqliteTable("permissions", {
	id: text("id").primaryKey(),
	key: text("key").notNull().unique(),
	name: text("name").notNull(),
	description: text("description"),
	isSystem: integer("is_system", { mode: "boolean" }).notNull().default(false),
	/** Clerk's id of a permission seeded here under another id (migrations/0024); permission.deleted matches it. */
	clerkId: text("clerk_id"),
	...mirrored,
});

export const rolePermissions = sqliteTable(
	"role_permissions",
	{
		roleId: text("role_id")
			.notNull()
			.references(() => roles.id, { onDelete: "cascade" }),
		permissionId: text("permission_id")
			.notNull()
			.references(() => permissions.id, { onDelete: "cascade" }),
	},
	(t) => [primaryKey({ columns: [t.roleId, t.permissionId] }), index("role_permissions_permission_idx").on(t.permissionId)],
);

export const memberships = sqliteTable(
	"memberships",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id")
			.notNull()
			.references(() => organizations.id),
		userId: text("user_id")
			.notNull()
			.references(() => users.id),
		role: text("role").notNull(),
		/**
		 * The user's email, names and deletion, copied from its users row (clerk-sync/shared.ts
		 * syncMemberUser, after every write to the user) so the member list reads one row per member.
		 */
		userEmail: text("user_email"),
		userFirstName: text("user_first_name"),
		userLastName: text("user_last_name"),
		userDeletedAt: integer("user_deleted_at"),
		...mirrored,
	},
	(t) => [
		uniqueIndex("memberships_org_user_uq").on(t.organizationId, t.userId),
		index("memberships_org_created_idx").on(t.organizationId, t.createdAt, t.id),
		// The member list's order over active members only: departed members and deleted users are not read.
		index("memberships_org_active_idx")
			.on(t.organizationId, t.createdAt, t.id)
			.where(sql`deleted_at IS NULL AND user_deleted_at IS NULL`),
		index("memberships_user_idx").on(t.userId),
	],
);

export const invitations = sqliteTable(
	"invitations",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id").notNull(),
		email: text("email").notNull(),
		role: text("role").notNull(),
		status: text("status").notNull(),
		/** Clerk's expires_at (ms): a pending invitation past it is expired (Clerk sends no webhook then). */
		expiresAt: integer("expires_at"),
		...mirrored,
	},
	(t) => [index("invitations_org_idx").on(t.organizationId, t.createdAt)],
);

export type User = typeof users.$inferSelect;
export type Organization = typeof organizations.$inferSelect;
export type Membership = typeof memberships.$inferSelect;

/**
 * Clerk sessions ended, removed or revoked (session.* webhooks): a token carrying one of these `sid`s
 * is refused. `revokedAt` is D1's own clock when the row was written: isolates read new rows with
 * `revoked_at > last seen` (services/sessions.ts). Rows are kept until `expiresAt`, when every token
 * issued before the revocation has expired (pruned as new revocations are written).
 */
export const revokedSessions = sqliteTable(
	"revoked_sessions",
	{
		sid: text("sid").primaryKey(),
		userId: text("user_id"),
		revokedAt: integer("revoked_at").notNull(),
		expiresAt: integer("expires_at").notNull(),
	},
	(t) => [index("revoked_sessions_revoked_at_idx").on(t.revokedAt), index("revoked_sessions_expires_at_idx").on(t.expiresAt)],
);

/**
 * Users whose every session ended at once (user.deleted): tokens issued (`iat`) at or before
 * `revokedBefore` (Clerk's clock, ms) are refused. `revokedAt` and `expiresAt` as in revoked_sessions.
 */
export const revokedUsers = sqliteTable(
	"revoked_users",
	{
		userId: text("user_id").primaryKey(),
		revokedBefore: integer("revoked_before").notNull(),
		revokedAt: integer("revoked_at").notNull(),
		expiresAt: integer("expires_at").notNull(),
	},
	(t) => [index("revoked_users_revoked_at_idx").on(t.revokedAt), index("revoked_users_expires_at_idx").on(t.expiresAt)],
);

/**
 * Tenant API keys (services/api-keys.ts): `sk_live_` + base62 of 32 random bytes, stored only as the
 * SHA-256 (hex) of the whole secret. After a rotation the replaced secret's hash stays in
 * `previousHash` until `previousExpiresAt` (the grace period). `permissions` is a JSON array of
 * permission keys; `createdBy` is the creating principal (a user id or `apikey:<id>`).
 */
export const apiKeys = sqliteTable(
	"api_keys",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id").notNull(),
		name: text("name").notNull(),
		hash: text("hash").notNull(),
		last4: text("last4").notNull(),
		previousHash: text("previous_hash"),
		previousExpiresAt: integer("previous_expires_at"),
		permissions: text("permissions").notNull(),
		rateLimitPerMinute: integer("rate_limit_per_minute"),
		createdBy: text("created_by").notNull(),
		createdAt: integer("created_at").notNull(),
		updatedAt: integer("updated_at").notNull(),
		lastUsedAt: integer("last_used_at"),
		expiresAt: integer("expires_at"),
		rotatedAt: integer("rotated_at"),
		revokedAt: integer("revoked_at"),
	},
	(t) => [
		uniqueIndex("api_keys_hash_uq").on(t.hash),
		index("api_keys_previous_hash_idx").on(t.previousHash),
		index("api_keys_org_created_idx").on(t.organizationId, t.createdAt, t.id),
	],
);

export type ApiKeyRow = typeof apiKeys.$inferSelect;
