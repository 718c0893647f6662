import { Webhook } from "svix";
import { uid } from "./factories";
import { TEST_WEBHOOK_SECRET } from "./vars";

/** Clerk's webhook envelope: { data, object: "event", type, timestamp, instance_id }. */
export function envelope(type: string, data: Record<string, unknown>, timestamp = Date.now()) {
	return {
		data,
		object: "event",
		type,
		timestamp,
		instance_id: "ins_test",
		event_attributes: { http_request: { client_ip: "", user_agent: "" } },
	};
}

export function userData(id: string, o: { email?: string; first?: string; last?: string; updatedAt?: number } = {}) {
	const emailId = `idn_${id}`;
	return {
		id,
		object: "user",
		first_name: o.first ?? "Grace",
		last_name: o.last ?? "Hopper",
		image_url: "https://img.clerk.com/x",
		primary_email_address_id: emailId,
		email_addresses: [
			{ id: `idn_other_${id}`, email_address: `other-${id}@example.com`, object: "email_address" },
			{
				id: emailId,
				email_address: o.email ?? `${id}@example.com`,
				object: "email_address",
				verification: { status: "verified" },
			},
		],
		public_metadata: {},
		created_at: 1_700_000_000_000,
		updated_at: o.updatedAt ?? 1_700_000_000_000,
	};
}

export function orgData(id: string, o: { name?: string; slug?: string; updatedAt?: number; publicMetadata?: Record<string, unknown> } = {}) {
	return {
		id,
		object: "organization",
		name: o.name ?? `Org ${id}`,
		slug: o.slug ?? id.toLowerCase(),
		image_url: "https://img.clerk.com/o",
		members_count: 1,
		public_metadata: o.publicMetadata ?? {},
		created_at: 1_700_000_000_000,
		updated_at: o.updatedAt ?? 1_700_000_000_000,
	};
}

export function membershipData(
	id: string,
	orgId: string,
	userId: string,
	o: { role?: string; updatedAt?: number; orgUpdatedAt?: number } = {},
) {
	return {
		id,
		object: "organization_membership",
		role: o.role ?? "org:member",
		permissions: ["org:sys_memberships:read"],
		created_at: 1_700_000_000_000,
		updated_at: o.updatedAt ?? 1_700_000_000_000,
		organization: { ...orgData(orgId, { updatedAt: o.orgUpdatedAt }) },
		public_user_data: {
			user_id: userId,
			first_name: "Pub",
			last_name: "User",
			identifier: `${userId}@example.com`,
			image_url: "",
		},
	};
}

export const deletedData = (id: string, object: string) => ({ id, object, deleted: true });

/** Headers Svix would send for `body`; `at` is the signing time in seconds. */
export function svixHeaders(body: string, o: { id?: string; at?: number; secret?: string; extraSignatures?: string[] } = {}) {
	const id = o.id ?? uid("msg");
	const at = o.at ?? Math.floor(Date.now() / 1000);
	const sig = new Webhook(o.secret ?? TEST_WEBHOOK_SECRET).sign(id, new Date(at * 1000), body);
	return {
		"svix-id": id,
		"svix-timestamp": String(at),
		"svix-signature": [...(o.extraSignatures ?? []), sig].join(" "),
		"content-type": "application/json",
	};
}
