#!/usr/bin/env node
// `npm run webhook:send -- --type user.created --id user_42 --email jo@example.com [--first Jo] [--last Doe]`
// `npm run webhook:send -- --type organizationMembership.created --org org_demo --user user_42 --role org:member`
// `npm run webhook:send -- --file payload.json`   (a full Clerk envelope)
// Signs a Clerk-shaped event with CLERK_WEBHOOK_SECRET from .dev.vars (svix) and POSTs it to the local Worker;
// with --wait, polls the local D1 until the queue consumer has recorded the event's outcome.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { Webhook } from "svix";
import { baseUrl, openLocalD1, parseArgs, readDevVars, usage, waitForEvent } from "./lib.mjs";

const HELP = `usage: npm run -s webhook:send -- --type <type> [options]
  Signs a Clerk-shaped event (svix, CLERK_WEBHOOK_SECRET from .dev.vars) and POSTs it to /api/webhooks/clerk.
  Prints the answer: 202 {"status":"queued","svixId":"msg_..."}.
  --type <type>       user.created (default), user.updated, user.deleted, organization.created|updated|deleted,
                      organizationMembership.created|updated|deleted, or any other type (sent as is)
  --id <id>           the entity id (user, organization or membership; default: random)
  --email <address>   user.*: primary email; membership: the member's identifier
  --first, --last     user.* / membership: first and last name
  --org <id>          membership: the organization (default org_demo); organization.*: its id
  --user <id>         membership: the member's user id
  --role <role>       membership: org:member (default) or org:admin
  --name, --slug      organization name and slug
  --data-region <r>   organization.*: public_metadata.dataRegion (eu or default; read when it is created)
  --file <path>       send this file as the body (a full Clerk envelope) instead
  --wait [seconds]    then wait until the queue consumer has processed the event (default deadline 30 s); prints
                      "<svixId> <outcome>" and exits 1 if it failed or the deadline passed
  --url <base>        the Worker (default: the running npm run dev, from .wrangler/dev-server.json, else
                      http://localhost:8787)
  --persist-to <dir>  --wait: the dev server's local state (default: from .wrangler/dev-server.json)
  --help              this text`;
const args = parseArgs(process.argv.slice(2));
usage(args, HELP);
const url = String(args.url ?? "").endsWith("/api/webhooks/clerk") ? args.url : `${baseUrl(args)}/api/webhooks/clerk`;
const devVars = readDevVars();
const secret = devVars.CLERK_WEBHOOK_SECRET || devVars.CLERK_WEBHOOK_SIGNING_SECRET;
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
			public_metadata: args["data-region"] ? { dataRegion: args["data-region"] } : {},
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
let res;
try {
	res = await fetch(url, {
	method: "POST",
	headers: {
		"content-type": "application/json",
		"svix-id": msgId,
		"svix-timestamp": String(Math.floor(Date.now() / 1000)),
			"svix-signature": signature,
		},
		body,
	});
} catch (err) {
	console.error(`POST ${url} failed (${err instanceof Error ? (err.cause?.code ?? err.message) : String(err)}): is \`npm run dev\` running?`);
	process.exit(1);
}
console.log(res.status, await res.text());
if (!res.ok) process.exit(1);
if (args.wait) process.exit(await waitProcessed(msgId, args.wait === true ? 30 : Number(args.wait)));

/** Waits until the queue consumer has processed the event (the local D1 events table). Returns the exit code. */
async function waitProcessed(svixId, seconds) {
	const { db, dispose } = await openLocalD1(args["persist-to"]);
	try {
		const row = await waitForEvent(db, svixId, Date.now() + seconds * 1000);
		if (!row) {
			console.error(`${svixId} not processed within ${seconds} s`);
			return 1;
		}
		console.log(`${svixId} ${row.outcome}${row.error ? `: ${row.error}` : ""}`);
		return row.outcome === "failed" ? 1 : 0;
	} finally {
		await dispose();
	}
}
