import type { JWTPayload } from "jose";
import { type ApiKeyPrincipal, apiKeyActor } from "./api-key";

/**
 * Who is calling, normalised from either Clerk session-token format, or an API key (see fromApiKey):
 * then `userId` is the principal `apikey:<id>` and `apiKey` is set.
 */
export interface AuthContext {
	/** The Clerk user id, or `apikey:<id>` for an API key. */
	userId: string;
	sessionId: string | null;
	/** Active organization; null when none, or when the session status is "pending". */
	orgId: string | null;
	orgSlug: string | null;
	/** Normalised role key, e.g. "org:admin". */
	orgRole: string | null;
	orgPermissions: string[];
	/** Clerk session-token format; null for an API key. */
	tokenVersion: 1 | 2 | null;
	/** Epoch seconds. */
	expiresAt: number;
	/** Epoch seconds; absent when the token has no `iat` (or the principal is not a session token). */
	issuedAt?: number;
	/** Set when the caller is an API key: it acts only in `apiKey.organizationId`, with its own permissions. */
	apiKey?: ApiKeyPrincipal;
	/** An impersonation (actor) token: who acts as `userId` (Clerk's `act.sub`; "unknown" for an `act` without one). */
	actor?: string;
	/** The session's status as the token states it (Clerk's `sts`: "active", "pending"), when it does. */
	sessionStatus?: string;
}

/** The caller behind a verified API key: principal `apikey:<id>`, its organization, its permissions, no role. */
export function fromApiKey(key: ApiKeyPrincipal): AuthContext {
	return {
		userId: apiKeyActor(key.id),
		sessionId: null,
		orgId: key.organizationId,
		orgSlug: null,
		orgRole: null,
		orgPermissions: key.permissions,
		tokenVersion: null,
		expiresAt: Math.floor((key.expiresAt ?? Number.MAX_SAFE_INTEGER) / 1000),
		apiKey: key,
	};
}

const LEGACY_ROLES: Record<string, string> = {
	admin: "org:admin",
	basic_member: "org:member",
	member: "org:member",
	"org:basic_member": "org:member",
};

/** Maps legacy keys (admin, basic_member) and v2's unprefixed keys to "org:<role>". */
export function normalizeRoleKey(role: string): string {
	const key = role.trim();
	const legacy = LEGACY_ROLES[key];
	if (legacy) return legacy;
	return key.startsWith("org:") ? key : `org:${key}`;
}

const str = (v: unknown): string | null => (typeof v === "string" && v.length > 0 ? v : null);
const csv = (v: unknown): string[] =>
	typeof v === "string"
		? v
				.split(",")
				.map((s) => s.trim())
				.filter(Boolean)
		: [];

/**
 * v2 permissions: `fea` lists features with a scope prefix ("o:reports", "uo:billing"); `o.per` lists
 * permission names; `o.fpm` holds one bitmask per organization feature, bit i (least significant
 * first) granting `org:<feature>:<per[i]>`.
 */
export function decodeV2Permissions(fea: unknown, per: unknown, fpm: unknown): string[] {
	const features = csv(fea)
		.map((f) => f.split(":"))
		.filter(([scope, name]) => scope !== undefined && name && scope.includes("o"))
		.map(([, name]) => name as string);
	const perms = csv(per);
	// A mask is a decimal integer of any size (one bit per permission name, so past 32 and 53 bits with
	// enough names): read as a BigInt, never through 32-bit shifts. A mask that is not digits grants nothing.
	const masks = csv(fpm).map((m) => (/^\d+$/.test(m) ? BigInt(m) : null));
	const out: string[] = [];
	features.forEach((feature, i) => {
		const mask = masks[i];
		if (mask === undefined || mask === null) return;
		perms.forEach((p, bit) => {
			if ((mask >> BigInt(bit)) & 1n) out.push(`org:${feature}:${p}`);
		});
	});
	return out;
}

export function normalizeClaims(payload: JWTPayload): AuthContext {
	const p = payload as Record<string, unknown>;
	const pending = p.sts === "pending";
	let orgId: string | null;
	let orgSlug: string | null;
	let role: string | null;
	let permissions: string[];
	let version: 1 | 2;

	if (p.v === 2) {
		version = 2;
		const o = (typeof p.o === "object" && p.o !== null ? p.o : {}) as Record<string, unknown>;
		orgId = str(o.id);
		orgSlug = str(o.slg);
		role = str(o.rol);
		permissions = decodeV2Permissions(p.fea, o.per, o.fpm);
	} else {
		version = 1;
		orgId = str(p.org_id);
		orgSlug = str(p.org_slug);
		role = str(p.org_role);
		permissions = Array.isArray(p.org_permissions) ? p.org_permissions.filter((x): x is string => typeof x === "string") : [];
	}

	const active = orgId !== null && !pending;
	return {
		userId: p.sub as string,
		sessionId: str(p.sid),
		orgId: active ? orgId : null,
		orgSlug: active ? orgSlug : null,
		orgRole: active && role ? normalizeRoleKey(role) : null,
		orgPermissions: active ? permissions : [],
		tokenVersion: version,
		expiresAt: p.exp as number,
		...(typeof p.iat === "number" ? { issuedAt: p.iat } : {}),
		...(p.act !== undefined && p.act !== null ? { actor: actorOf(p.act) } : {}),
		...(typeof p.sts === "string" ? { sessionStatus: p.sts } : {}),
	};
}

/** Who acts in an impersonation token (`act: { sub }`, RFC 8693); "unknown" for any other `act`. */
function actorOf(act: unknown): string {
	return (typeof act === "object" && act !== null ? str((act as Record<string, unknown>).sub) : null) ?? "unknown";
}
