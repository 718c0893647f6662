#!/usr/bin/env node
// `npm run webhook:send -- --type user.created --id user_42 --email jo@example.com [--first Jo] [--last Doe]`
// `npm run webhook:send -- --type organizationMembership.created --org org_demo --user user_42 --role org:member`
// `npm run webhook:send -- --file payload.json`   (a full Clerk envelope)
// Signs a Clerk-shaped event with CLERK_WEBHOOK_SECRET from .dev.vars (svix) and POSTs it to the local Worker.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { Webhook } from "svix";
import { parseArgs, readDevVars } from "./lib.mjs";

const args = parseArgs(process.argv.slice(2));
const url = args.url ?? "http://localhost:8787/api/webhooks/clerk";
const secret = readDevVars().CLERK_WEBHOOK_SECRET;
if (!secret) {
	console.error("CLERK_WEBHOOK_SECRET is not in .dev.vars: run `npm run dev` once first");
	process.exit(1);
}
const now = Date.now();
function data(type) {
	const id = args.id ?? `user_${randomUUID().slice(0, 8)}`;
	if (type.startsWith("user.")) {
		if (type === "user.deleted") return { id, object: "user", deleted: true };
		const emailId = `idn_${id}`;
		return {
			id,
			object: "user",
			first_name: args.first ?? "Jo",
			last_name: args.last ?? "Doe",
			image_url: "",
			primary_email_address_id: emailId,
			email_addresses: [{ id: emailId, object: "email_address", email_address: args.email ?? `${id}@example.com` }],
			created_at: now,
			updated_at: now,
		};
	}
	if (type.startsWith("organization.")) {
		const orgId = args.id ?? args.org ?? `org_${randomUUID().slice(0, 8)}`;
		if (type === "organization.deleted") return { id: orgId, object: "organization", deleted: true };
		return {
			id: orgId,
			object: "organization",
			name: args.name ?? orgId,
			slug: args.slug ?? orgId,
			created_at: now,
			updated_at: now,
		};
	}
	if (type.startsWith("organizationMembership.")) {
		// Clerk embeds the organization as it is now; for the seeded demo org, send its seeded values.
		const org = args.org ?? "org_demo";
		const demo = org === "org_demo";
		return {
			id: args.id ?? `orgmem_${randomUUID().slice(0, 8)}`,
			object: "organization_membership",
			role: args.role ?? "org:member",
			created_at: now,
			updated_at: now,
			organization: {
				id: org,
				object: "organization",
				name: args.name ?? (demo ? "Demo Inc" : org),
				slug: args.slug ?? (demo ? "demo" : org),
				created_at: demo ? 1700000000000 : now,
				updated_at: demo ? 1700000000000 : now,
			},
			public_user_data: {
				user_id: args.user,
				identifier: args.email ?? `${args.user}@example.com`,
				first_name: args.first ?? null,
				last_name: args.last ?? null,
			},
		};
	}
	return { id, object: "unknown" };
}
const type = args.type ?? "user.created";
const body = args.file
	? readFileSync(args.file, "utf8")
	: JSON.stringify({ data: data(type), object: "event", type, timestamp: now, instance_id: "ins_local" });
const msgId = `msg_${randomUUID().replaceAll("-", "")}`;
const signature = new Webhook(secret).sign(msgId, new Date(), body);
const res = await fetch(url, {
	method: "POST",
	headers: {
		"content-type": "application/json",
		"svix-id": msgId,
		"svix-timestamp": String(Math.floor(Date.now() / 1000)),
		"svix-signature": signature,
	},
	body,
});
console.log(res.status, await res.text());
process.exit(res.ok ? 0 : 1);
