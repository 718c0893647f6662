import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createDb } from "../../src/db/client";
import { encodeCursor } from "../../src/lib/cursor";
import { membersPageQuery } from "../../src/services/identity";
import { seedMembership, seedOrg, seedUser, uid } from "../helpers/factories";
import { signToken } from "../helpers/jwt";
import { type Body, get } from "../helpers/request";

// What one member list page reads from the directory (D1) as an organization grows (issue 19; `npm run
// bench -- scale` measures the same at 100,000 members): D1's meta.rows_read of the page's query, the
// very query listMembers runs (membersPageQuery), next to the API's answer for the same page.

type MemberPage = Body<"GET /api/orgs/:orgId/members">;

const ROWS = 600;
const LIMIT = 10;
const BASE = 1_700_000_000_000;

/** Member i: membership created at BASE + i / 10 (ten share each instant: the id breaks the tie). */
const memberId = (org: string, i: number) => `orgmem_${org}_${String(i).padStart(5, "0")}`;
/** Every third member has left the organization; every seventh user was deleted in Clerk. */
const departed = (i: number) => i % 3 === 0;
const deletedUser = (i: number) => i % 7 === 0;
const listed = (i: number) => !departed(i) && !deletedUser(i);

async function seedMembers(orgId: string, tag: string) {
	await env.DB.batch([
		env.DB.prepare(
			`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
			INSERT INTO users (id, email, first_name, last_name, source_updated_at, created_at, updated_at, deleted_at)
			SELECT printf('user_%s_%05d', ?2, i), CASE WHEN i % 7 = 0 THEN NULL ELSE printf('m%d@example.com', i) END,
				CASE WHEN i % 7 = 0 THEN NULL ELSE 'Member' END, CASE WHEN i % 7 = 0 THEN NULL ELSE printf('%d', i) END,
				1, ?3, ?3, CASE WHEN i % 7 = 0 THEN ?3 END FROM n`,
		).bind(ROWS, tag, BASE),
		// As the Clerk consumer leaves them: each membership with its user's fields (clerk-sync/shared.ts syncMemberUser).
		env.DB.prepare(
			`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
			INSERT INTO memberships (id, organization_id, user_id, role, source_updated_at, created_at, updated_at, deleted_at,
				user_email, user_first_name, user_last_name, user_deleted_at)
			SELECT printf('orgmem_%s_%05d', ?2, i), ?4, u.id, 'org:member', 1, ?3 + i / 10, ?3 + i / 10,
				CASE WHEN i % 3 = 0 THEN ?3 END, u.email, u.first_name, u.last_name, u.deleted_at
			FROM n JOIN users u ON u.id = printf('user_%s_%05d', ?2, i)`,
		).bind(ROWS, tag, BASE, orgId),
	]);
}

/** The page's query as listMembers runs it, through D1: its rows, rows read and plan. */
async function measured(orgId: string, cursor: string | null) {
	const { sql, params } = membersPageQuery(createDb(env.DB), orgId, { cursor: cursor ?? undefined, limit: LIMIT }).toSQL();
	const result = await env.DB.prepare(sql)
		.bind(...params)
		.all<{ id: string }>();
	const plan = await env.DB.prepare(`EXPLAIN QUERY PLAN ${sql}`)
		.bind(...params)
		.all<{ detail: string }>();
	return { ids: result.results.map((r) => r.id), rows: result.meta.rows_read, plan: plan.results.map((r) => r.detail).join("; ") };
}

describe("the member list reads a page of memberships at any depth, not their users", () => {
	it("limit + 2 rows per page on page 1, page 2 and from the middle, past departed members and deleted users", async () => {
		const orgId = await seedOrg();
		const tag = uid("m").toLowerCase();
		await seedMembers(orgId, tag);
		// The admin reading the list joined before every seeded member.
		const admin = await seedUser();
		const adminMembership = await seedMembership(orgId, admin, "org:admin");
		await env.DB.prepare("UPDATE memberships SET created_at = ? WHERE id = ?").bind(BASE - 1, adminMembership).run();
		const token = await signToken({ userId: admin, expiresIn: 3600 });
		const api = (cursor: string | null) => get<MemberPage>(`/api/orgs/${orgId}/members?limit=${LIMIT}${cursor ? `&cursor=${cursor}` : ""}`, token);

		const expected = Array.from({ length: ROWS }, (_, k) => k + 1).filter(listed);
		const middle = expected[Math.floor(expected.length / 2)] as number;
		const pages: { label: string; cursor: string | null; want: string[] }[] = [
			{ label: "page 1", cursor: null, want: [adminMembership, ...expected.slice(0, LIMIT - 1).map((i) => memberId(tag, i))] },
		];
		const first = await api(null);
		expect(first.status, first.text).toBe(200);
		pages.push({
			label: "page 2",
			cursor: first.json.nextCursor,
			want: expected.slice(LIMIT - 1, 2 * LIMIT - 1).map((i) => memberId(tag, i)),
		});
		pages.push({
			label: "middle",
			cursor: encodeCursor({ k: BASE + Math.floor(middle / 10), id: memberId(tag, middle) }),
			want: expected.slice(expected.indexOf(middle) + 1, expected.indexOf(middle) + 1 + LIMIT).map((i) => memberId(tag, i)),
		});
		for (const page of pages) {
			const m = await measured(orgId, page.cursor);
			// limit + 1 memberships, plus the cursor's own row on a cursor page; never a users row.
			expect(m.rows, `${page.label}: ${m.plan}`).toBeLessThanOrEqual(LIMIT + 2);
			expect(m.plan).toContain("memberships_org_active_idx");
			expect(m.plan).not.toContain("users");
			const res = await api(page.cursor);
			expect(res.status, res.text).toBe(200);
			expect(res.json.data.map((d) => d.id)).toEqual(m.ids.slice(0, LIMIT));
			expect(res.json.data.map((d) => d.id), page.label).toEqual(page.want);
		}

		// Each entry as the API has always answered it, from the membership row alone.
		const [one] = (await api(pages[2]!.cursor)).json.data;
		const i = Number(one!.id.slice(-5));
		expect(one).toEqual({
			id: memberId(tag, i),
			userId: `user_${tag}_${String(i).padStart(5, "0")}`,
			role: "org:member",
			email: `m${i}@example.com`,
			firstName: "Member",
			lastName: String(i),
			createdAt: BASE + Math.floor(i / 10),
		});
	});
});
