import { uid } from "./factories";
import type { Handler } from "./network";
import { TEST_CLERK_SECRET_KEY } from "./vars";

/** One request the Worker made to Clerk's Backend API. */
export interface ClerkCall {
	method: string;
	/** Path below https://api.clerk.com/v1, e.g. "/organizations/org_1/invitations". */
	path: string;
	auth: string | null;
	body: Record<string, unknown> | null;
}

const clerkErrors = (status: number, code: string, message: string) =>
	Response.json(
		{ errors: [{ message, long_message: message, code }], clerk_trace_id: "trace_test" },
		{ status },
	);

/**
 * Clerk's Backend API at the network boundary, answering with its documented shapes
 * (OrganizationInvitation, OrganizationMembership, ClerkErrors). `calls` records what the Worker sent;
 * `fail` makes the next answers an error (status, Clerk error code).
 */
export function fakeClerkApi() {
	const state = {
		calls: [] as ClerkCall[],
		fail: null as null | { status: number; code: string },
		/** Invitations Clerk knows of (created here), for revoke. */
		invitations: new Map<string, Record<string, unknown>>(),
	};
	const membership = (orgId: string, userId: string, role: string, now: number) => ({
		object: "organization_membership",
		id: `orgmem_${userId}`,
		role,
		role_name: role === "org:admin" ? "Admin" : "Member",
		permissions: [],
		public_metadata: {},
		private_metadata: {},
		organization: { object: "organization", id: orgId, name: "Org", slug: orgId.toLowerCase(), created_at: 1, updated_at: 1 },
		public_user_data: {
			user_id: userId,
			first_name: "Test",
			last_name: userId,
			image_url: "https://img.clerk.com/x",
			has_image: false,
			identifier: `${userId}@example.com`,
		},
		created_at: now - 60_000,
		updated_at: now,
	});
	const handler: Handler = async (req) => {
		const url = new URL(req.url);
		const path = url.pathname.replace(/^\/v1/, "");
		const text = req.method === "GET" || req.method === "DELETE" ? "" : await req.text();
		const body = text ? (JSON.parse(text) as Record<string, unknown>) : null;
		state.calls.push({ method: req.method, path, auth: req.headers.get("authorization"), body });
		if (req.headers.get("authorization") !== `Bearer ${TEST_CLERK_SECRET_KEY}`) {
			return clerkErrors(401, "authentication_invalid", "Invalid authentication");
		}
		if (state.fail) return clerkErrors(state.fail.status, state.fail.code, `stubbed ${state.fail.code}`);
		const now = Date.now();
		let m: RegExpExecArray | null;
		if (req.method === "POST" && (m = /^\/organizations\/([^/]+)\/invitations$/.exec(path))) {
			const inv = {
				object: "organization_invitation",
				id: uid("orginv"),
				email_address: body?.email_address,
				role: body?.role,
				role_name: body?.role === "org:admin" ? "Admin" : "Member",
				organization_id: decodeURIComponent(m[1] as string),
				status: "pending",
				public_metadata: {},
				private_metadata: {},
				url: null,
				expires_at: now + 30 * 86_400_000,
				created_at: now,
				updated_at: now,
			};
			state.invitations.set(inv.id, inv);
			return Response.json(inv);
		}
		if (req.method === "POST" && (m = /^\/organizations\/([^/]+)\/invitations\/([^/]+)\/revoke$/.exec(path))) {
			const id = decodeURIComponent(m[2] as string);
			const known = state.invitations.get(id);
			const orgId = decodeURIComponent(m[1] as string);
			if (known && known.organization_id !== orgId) return clerkErrors(404, "resource_not_found", "not found");
			const inv = {
				object: "organization_invitation",
				email_address: "someone@example.com",
				role: "org:member",
				organization_id: orgId,
				created_at: now - 1000,
				...known,
				id,
				status: "revoked",
				updated_at: now,
			};
			state.invitations.set(id, inv);
			return Response.json(inv);
		}
		if ((m = /^\/organizations\/([^/]+)\/memberships\/([^/]+)$/.exec(path))) {
			const [orgId, userId] = [decodeURIComponent(m[1] as string), decodeURIComponent(m[2] as string)];
			if (req.method === "PATCH") return Response.json(membership(orgId, userId, String(body?.role), now));
			if (req.method === "DELETE") return Response.json(membership(orgId, userId, "org:member", now));
		}
		return clerkErrors(404, "resource_not_found", "not found");
	};
	return { state, routes: { "https://api.clerk.com/": handler } as Record<string, Handler> };
}
