import { type SQL, sql } from "drizzle-orm";
import { type Data, num as n, obj, str as s } from "../../lib/payload";
import { MalformedPayload, type SyncPlan } from "../sync-plan";

/** One Clerk event as the family planners read it. */
export interface ClerkEvent {
	type: string;
	data: Data;
	/** data.id */
	id: string | null;
	/** The envelope's time (ms). */
	eventTs: number;
	/** The object's updated_at (ms), else the envelope's time. */
	objectTs: number;
	now: number;
	/** The svix id: audit and webhook event ids derive from it. */
	eventId: string;
}

/** Turns one Clerk event of a family into its plan. */
export type Planner = (e: ClerkEvent) => SyncPlan;

/** A plan with the event's defaults; the family planner fills in what applies. */
export function planOf(e: ClerkEvent, fields: Partial<SyncPlan>): SyncPlan {
	return {
		statements: [],
		organizationId: null,
		entityId: e.id,
		staleCheck: null,
		invalidate: {},
		ignored: false,
		...fields,
	};
}

/** Recorded with outcome ignored: nothing to apply. */
export const ignore = (e: ClerkEvent, organizationId: string | null = null): SyncPlan =>
	planOf(e, { organizationId, ignored: true });

/** Clerk sends ms; tolerate seconds from hand-made payloads. */
export const ms = (v: number | null): number | null => (v === null ? null : v < 1e12 ? v * 1000 : v);

/** The object's created_at (ms), else now. */
export const createdAt = (d: Data, now: number): number => ms(n(d.created_at)) ?? now;

/**
 * The objects of a list field (absent or null reads as empty). Anything else (a list holding null, a
 * number, a nested list, or a field that is not a list) is a malformed payload: the event fails with
 * the path of the bad part rather than throwing a TypeError that would take its whole batch down.
 */
export function objects(d: Data, field: string): Data[] {
	const v = d[field];
	if (v === undefined || v === null) return [];
	if (!Array.isArray(v)) throw new MalformedPayload(`data.${field} is not a list`);
	v.forEach((x, i) => {
		if (typeof x !== "object" || x === null || Array.isArray(x)) throw new MalformedPayload(`data.${field}[${i}] is not an object`);
	});
	return v as Data[];
}

function primaryEmail(d: Data): string | null {
	const list = objects(d, "email_addresses");
	const primary = list.find((e) => e.id === d.primary_email_address_id) ?? list[0];
	return s(primary?.email_address);
}

export function upsertUser(d: Data, ts: number, now: number): SQL {
	return sql`
		INSERT INTO users (id, email, first_name, last_name, image_url, source_updated_at, created_at, updated_at)
		VALUES (${d.id}, ${primaryEmail(d)}, ${s(d.first_name)}, ${s(d.last_name)}, ${s(d.image_url)}, ${ts},
			${createdAt(d, now)}, ${now})
		ON CONFLICT (id) DO UPDATE SET email = excluded.email, first_name = excluded.first_name,
			last_name = excluded.last_name, image_url = excluded.image_url,
			source_updated_at = excluded.source_updated_at, created_at = excluded.created_at, updated_at = excluded.updated_at
		WHERE users.deleted_at IS NULL AND excluded.source_updated_at >= users.source_updated_at`;
}

/** The organization's public_metadata.dataRegion as sent: "eu" and "default" are regions, anything else is not. */
export const metadataRegion = (d: Data): unknown => obj(d.public_metadata).dataRegion;

/**
 * The organization's data region comes from the event that creates its row (public_metadata.dataRegion
 * "eu", else "default") and no later event changes it: only an operator does (services/operator.ts), and,
 * for a row a session token created first, the first Clerk event (SyncPlan.regionClaim).
 */
export function upsertOrg(d: Data, ts: number, now: number): SQL {
	return sql`
		INSERT INTO organizations (id, name, slug, image_url, data_region, source_updated_at, created_at, updated_at)
		VALUES (${d.id}, ${s(d.name)}, ${s(d.slug)}, ${s(d.image_url)}, ${metadataRegion(d) === "eu" ? "eu" : "default"}, ${ts},
			${createdAt(d, now)}, ${now})
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, slug = excluded.slug, image_url = excluded.image_url,
			source_updated_at = excluded.source_updated_at, created_at = excluded.created_at, updated_at = excluded.updated_at
		WHERE organizations.deleted_at IS NULL AND excluded.source_updated_at >= organizations.source_updated_at`;
}

/**
 * Copies the user's email, names and deletion from its users row onto each of its memberships (the
 * member list reads memberships alone). Runs after every statement that writes a users row, in the same
 * batch, so a membership always shows its user as the users row has it: a stale event that changed
 * nothing copies nothing new, and a deleted user's memberships lose the data its users row lost.
 * Writes only the memberships whose copy differs.
 */
export function syncMemberUser(userId: string): SQL {
	return sql`
		UPDATE memberships SET user_email = u.email, user_first_name = u.first_name, user_last_name = u.last_name,
			user_deleted_at = u.deleted_at
		FROM users u
		WHERE memberships.user_id = ${userId} AND u.id = memberships.user_id
			AND (memberships.user_email IS NOT u.email OR memberships.user_first_name IS NOT u.first_name
				OR memberships.user_last_name IS NOT u.last_name OR memberships.user_deleted_at IS NOT u.deleted_at)`;
}

/** Users and organizations stay deleted once deleted; a deletion arriving first leaves a tombstone. */
export function softDelete(table: "users" | "organizations", id: string, ts: number, now: number): SQL {
	const t = sql.raw(table);
	return sql`
		INSERT INTO ${t} (id, source_updated_at, created_at, updated_at, deleted_at) VALUES (${id}, ${ts}, ${now}, ${now}, ${ts})
		ON CONFLICT (id) DO UPDATE SET deleted_at = excluded.deleted_at, updated_at = excluded.updated_at,
			source_updated_at = max(${t}.source_updated_at, excluded.source_updated_at)
		WHERE ${t}.deleted_at IS NULL`;
}

/** 1 when the stored row is newer than `ts` (or, with deletedBlocks, deleted): the event was stale. */
export const staleRow = (table: string, column: string, id: string, ts: number, deletedBlocks: boolean): SQL =>
	sql`(SELECT CASE WHEN source_updated_at > ${ts}${deletedBlocks ? sql` OR deleted_at IS NOT NULL` : sql``} THEN 1 ELSE 0 END
		FROM ${sql.raw(table)} WHERE ${sql.raw(column)} = ${id})`;
