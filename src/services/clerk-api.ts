import type { Env } from "../env";
import { ApiError } from "../errors";

/**
 * Clerk's Backend API (https://api.clerk.com/v1, `Authorization: Bearer CLERK_SECRET_KEY`), for the
 * member and invitation changes this service makes on behalf of an organization's admins. Clerk is the
 * source of truth for identity: the change is made there, the API answers with what Clerk returned,
 * and the webhook sync brings it to D1 (services/identity.ts also records Clerk's answer right away,
 * ordered by Clerk's updated_at exactly as the sync orders events).
 */
export const CLERK_API_BASE = "https://api.clerk.com/v1";
const TIMEOUT_MS = 10_000;

/** An OrganizationInvitation as Clerk's Backend API returns it (timestamps in ms). */
export interface ClerkInvitation {
	object: "organization_invitation";
	id: string;
	email_address: string;
	role: string;
	organization_id: string;
	status: "pending" | "accepted" | "revoked" | "expired" | string;
	/** When it expires (ms); Clerk sends no webhook then. */
	expires_at?: number | null;
	created_at: number;
	updated_at: number;
}

/** An OrganizationMembership as Clerk's Backend API returns it (timestamps in ms). */
export interface ClerkMembership {
	object: "organization_membership";
	id: string;
	role: string;
	organization: { id: string } & Record<string, unknown>;
	public_user_data: {
		user_id: string;
		first_name: string | null;
		last_name: string | null;
		identifier: string | null;
	} & Record<string, unknown>;
	created_at: number;
	updated_at: number;
}

/** Clerk's error body: `{errors: [{message, long_message, code}], clerk_trace_id}`. */
interface ClerkErrors {
	errors?: { message?: string; long_message?: string; code?: string }[];
}

// Clerk error codes that mean "the thing already exists / is in a state that refuses this".
const CONFLICT_CODES = new Set(["duplicate_record", "already_a_member_in_organization", "form_identifier_exists"]);

/** The configured secret key; 500 BAD_ENVIRONMENT (like STRIPE_SECRET_KEY) when it is not set. */
function secretKey(env: Env): string {
	// Read from the binding directly: the generated Env type may not list it yet.
	const key = (env as { CLERK_SECRET_KEY?: unknown }).CLERK_SECRET_KEY;
	if (typeof key !== "string" || key.trim() === "") {
		throw new ApiError("BAD_ENVIRONMENT", "service configuration is invalid: CLERK_SECRET_KEY");
	}
	return key.trim();
}

/** Clerk's refusal as our problem: 404 stays 404, input errors 400, duplicates 409, the rest 503. */
async function refusal(res: Response): Promise<ApiError> {
	const body = (await res.json().catch(() => ({}))) as ClerkErrors;
	const first = body.errors?.[0];
	const message = first?.long_message ?? first?.message ?? `Clerk answered ${res.status}`;
	if (res.status === 404) return new ApiError("NOT_FOUND", message);
	if (first?.code && CONFLICT_CODES.has(first.code)) return new ApiError("CONFLICT", message);
	if (res.status === 400 || res.status === 422) return new ApiError("BAD_REQUEST", message);
	if (res.status === 403) return new ApiError("CONFLICT", `Clerk refused the change: ${message}`);
	const retry = res.headers.get("retry-after");
	// 401 (a rejected secret key), 429 and 5xx: Clerk is not available to us right now.
	return new ApiError("UPSTREAM_UNAVAILABLE", "the identity provider is unavailable, try again", {
		headers: { "Retry-After": retry && /^\d+$/.test(retry) ? retry : "5" },
	});
}

async function clerkFetch<T>(env: Env, method: string, path: string, body?: unknown): Promise<T> {
	const key = secretKey(env);
	let res: Response;
	try {
		res = await fetch(`${CLERK_API_BASE}${path}`, {
			method,
			headers: {
				authorization: `Bearer ${key}`,
				accept: "application/json",
				...(body === undefined ? {} : { "content-type": "application/json" }),
			},
			body: body === undefined ? undefined : JSON.stringify(body),
			signal: AbortSignal.timeout(TIMEOUT_MS),
		});
	} catch (err) {
		throw new ApiError("UPSTREAM_UNAVAILABLE", "the identity provider is unavailable, try again", {
			headers: { "Retry-After": "5" },
			cause: err,
		});
	}
	if (!res.ok) throw await refusal(res);
	return (await res.json()) as T;
}

const seg = encodeURIComponent;

/** POST /organizations/{organization_id}/invitations (createOrganizationInvitation). */
export function createOrganizationInvitation(
	env: Env,
	orgId: string,
	input: { emailAddress: string; role: string; inviterUserId?: string | null },
): Promise<ClerkInvitation> {
	return clerkFetch(env, "POST", `/organizations/${seg(orgId)}/invitations`, {
		email_address: input.emailAddress,
		role: input.role,
		...(input.inviterUserId ? { inviter_user_id: input.inviterUserId } : {}),
	});
}

/** POST /organizations/{organization_id}/invitations/{invitation_id}/revoke (revokeOrganizationInvitation). */
export function revokeOrganizationInvitation(
	env: Env,
	orgId: string,
	invitationId: string,
	requestingUserId?: string | null,
): Promise<ClerkInvitation> {
	return clerkFetch(
		env,
		"POST",
		`/organizations/${seg(orgId)}/invitations/${seg(invitationId)}/revoke`,
		requestingUserId ? { requesting_user_id: requestingUserId } : {},
	);
}

/** PATCH /organizations/{organization_id}/memberships/{user_id} {role} (updateOrganizationMembership). */
export function updateOrganizationMembership(env: Env, orgId: string, userId: string, role: string): Promise<ClerkMembership> {
	return clerkFetch(env, "PATCH", `/organizations/${seg(orgId)}/memberships/${seg(userId)}`, { role });
}

/** DELETE /organizations/{organization_id}/memberships/{user_id} (deleteOrganizationMembership). */
export function deleteOrganizationMembership(env: Env, orgId: string, userId: string): Promise<ClerkMembership> {
	return clerkFetch(env, "DELETE", `/organizations/${seg(orgId)}/memberships/${seg(userId)}`);
}
