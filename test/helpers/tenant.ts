import { env } from "cloudflare:workers";
import { seedMembership, seedOrg, seedUser, uid } from "./factories";
import { signToken } from "./jwt";

/** A member to create: a role key ("org:admin"), or a custom role with exactly these permissions. */
export type MemberSpec =
	| string
	| {
			/** Role key; default "org:member". Ignored when `permissions` is given. */
			role?: string;
			/** A custom role (created for this member) holding exactly these permission keys. */
			permissions?: readonly string[];
			/** Sign the token with this organization active (org id and role in the claims), as Clerk does. */
			activeOrg?: boolean;
	  };

export interface SeededMember {
	/** User id. */
	id: string;
	role: string;
	/** A signed session token for this user. */
	token: string;
}

export interface TenantSpec<M extends Record<string, MemberSpec>> {
	plan?: "free" | "pro" | "enterprise";
	/** Per-organization overrides of the plan's limits (null or absent: the plan's value). */
	limits?: { monthlyApiQuota?: number | null; rateLimitPerMinute?: number | null; userRateLimitPerMinute?: number | null };
	/** Members by name; default { admin: "org:admin", member: "org:member" }. */
	members?: M;
}

export type Tenant<M extends Record<string, MemberSpec> = typeof DEFAULT_MEMBERS> = {
	orgId: string;
	/** "/api/orgs/<orgId>" */
	base: string;
} & { [K in keyof M]: SeededMember };

const DEFAULT_MEMBERS = { admin: "org:admin", member: "org:member" } as const;

/** A global role with exactly these permissions (none by default); returns its key. */
/** The permissions a system role (`org:member`, `org:admin`) grants, as the directory holds them. */
export async function systemRolePermissions(role: string): Promise<string[]> {
	const { results } = await env.DB.prepare(
		`SELECT p.key AS key FROM roles r JOIN role_permissions rp ON rp.role_id = r.id JOIN permissions p ON p.id = rp.permission_id
		WHERE r.key = ? AND r.organization_id IS NULL`,
	)
		.bind(role)
		.all<{ key: string }>();
	return results.map((r) => r.key);
}

export async function seedRole(permissions: readonly string[] = []): Promise<string> {
	const id = uid("role");
	const key = `org:${uid("custom").toLowerCase()}`;
	await env.DB.batch([
		env.DB.prepare(
			"INSERT INTO roles (id, organization_id, key, name, source_updated_at, created_at, updated_at) VALUES (?, NULL, ?, ?, 1, 0, 0)",
		).bind(id, key, `Custom ${key}`),
		...permissions.map((p) =>
			env.DB.prepare("INSERT INTO role_permissions (role_id, permission_id) SELECT ?, id FROM permissions WHERE key = ?").bind(id, p),
		),
	]);
	return key;
}

/**
 * One organization with the given plan, limit overrides and members, each member with a role and a
 * signed session token: `const t = await seedTenant(); call("GET", t.base, { token: t.admin.token })`.
 */
export async function seedTenant<M extends Record<string, MemberSpec> = typeof DEFAULT_MEMBERS>(
	spec: TenantSpec<M> = {},
): Promise<Tenant<M>> {
	const orgId = await seedOrg();
	const l = spec.limits ?? {};
	if (spec.plan || spec.limits) {
		await env.DB.prepare(
			"UPDATE organizations SET plan = ?, monthly_quota = ?, rate_limit_per_minute = ?, user_rate_limit_per_minute = ? WHERE id = ?",
		)
			.bind(spec.plan ?? "free", l.monthlyApiQuota ?? null, l.rateLimitPerMinute ?? null, l.userRateLimitPerMinute ?? null, orgId)
			.run();
	}
	const out: Record<string, SeededMember> = {};
	for (const [name, s] of Object.entries<MemberSpec>(spec.members ?? (DEFAULT_MEMBERS as unknown as M))) {
		const o = typeof s === "string" ? { role: s } : s;
		const role = o.permissions ? await seedRole(o.permissions) : (o.role ?? "org:member");
		const id = await seedUser();
		await seedMembership(orgId, id, role);
		// Valid for an hour: a fixture seeded in beforeAll serves a whole file.
		const token = await signToken({ userId: id, expiresIn: 3600, ...(o.activeOrg ? { orgId, role } : {}) });
		out[name] = { id, role, token };
	}
	return { orgId, base: `/api/orgs/${orgId}`, ...out } as Tenant<M>;
}
