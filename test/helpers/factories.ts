import { env } from "cloudflare:workers";

let seq = 0;
/** Ids unique per test run, so tests never depend on each other's rows. */
export function uid(prefix: string): string {
	seq += 1;
	return `${prefix}_${Date.now().toString(36)}${seq.toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

export async function seedUser(id = uid("user"), fields: { email?: string; firstName?: string; lastName?: string } = {}) {
	const now = Date.now();
	await env.DB.prepare(
		"INSERT INTO users (id, email, first_name, last_name, source_updated_at, created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?)",
	)
		.bind(id, fields.email ?? `${id}@example.com`, fields.firstName ?? "Test", fields.lastName ?? id, now, now)
		.run();
	return id;
}

export async function seedOrg(id = uid("org"), fields: { name?: string; slug?: string } = {}) {
	const now = Date.now();
	await env.DB.prepare(
		"INSERT INTO organizations (id, name, slug, source_updated_at, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?)",
	)
		.bind(id, fields.name ?? `Org ${id}`, fields.slug ?? id.toLowerCase(), now, now)
		.run();
	return id;
}

let memberClock = 0;
export async function seedMembership(orgId: string, userId: string, role = "org:member") {
	const now = Date.now() + memberClock++;
	const id = uid("orgmem");
	// With its user's fields copied from the users row, as the Clerk consumer writes them (clerk-sync/shared.ts syncMemberUser).
	await env.DB.prepare(
		`INSERT INTO memberships (id, organization_id, user_id, role, source_updated_at, created_at, updated_at,
			user_email, user_first_name, user_last_name, user_deleted_at)
		SELECT ?1, ?2, ?3, ?4, 1, ?5, ?5, u.email, u.first_name, u.last_name, u.deleted_at
		FROM (SELECT 1) LEFT JOIN users u ON u.id = ?3`,
	)
		.bind(id, orgId, userId, role, now)
		.run();
	return id;
}
