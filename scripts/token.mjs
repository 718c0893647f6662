#!/usr/bin/env node
// `npm run token -- --user <id> [--org <id>] [--role org:admin] [--slug demo] [--v1] [--ttl 3600] [--azp http://localhost:3000]`
// Prints a session token signed with the local development key, in Clerk's v2 claim format
// (`v: 2`, `o: {id, slg, rol, per, fpm}`, `fea`) or, with --v1, the old names (org_id, org_role, …).
import { existsSync, readFileSync } from "node:fs";
import { importJWK, SignJWT } from "jose";
import { baseUrl, DEV_KEY, parseArgs, ROLE_PERMISSIONS, readDevVars, usage } from "./lib.mjs";

const HELP = `usage: npm run -s token -- --user <userId> [options]
  Prints a session token signed with the local development key (.dev-jwt-key.json, written by npm run dev).
  --user <id>          subject (required), e.g. user_demo_admin
  --org <id>           active organization, e.g. org_demo (omit: no active organization)
  --role <role>        role in that organization: org:admin or org:member (default org:member)
  --permissions <a,b>  permissions instead of the role's seeded ones (comma-separated org:<feature>:<name>)
  --slug <slug>        organization slug claim (default: the org id)
  --v1                 Clerk's v1 claim names (org_id, org_role, org_slug, org_permissions) instead of v2
  --ttl <seconds>      lifetime (default 3600; the service refuses more than 24 h)
  --azp <origin>       authorized party (default: the first CLERK_AUTHORIZED_PARTIES entry in .dev.vars)
  --check              also call GET /api/me on the dev server with the token; exit 1 if it is refused
  --url <base>         server for --check (default: the running npm run dev, from .wrangler/dev-server.json,
                       else http://localhost:8787)
  --help               this text`;
const args = parseArgs(process.argv.slice(2));
usage(args, HELP);
if (!args.user || args.user === true) {
	console.error(HELP);
	process.exit(2);
}
if (!existsSync(DEV_KEY)) {
	console.error("no local signing key yet: run `npm run dev` once (it writes .dev.vars and .dev-jwt-key.json)");
	process.exit(1);
}
const vars = readDevVars();
const jwk = JSON.parse(readFileSync(DEV_KEY, "utf8"));
const key = await importJWK(jwk, "RS256");
const role = args.role ?? "org:member";
const permissions = args.permissions ? String(args.permissions).split(",") : (ROLE_PERMISSIONS[role] ?? []);
const now = Math.floor(Date.now() / 1000);
const claims = { sid: `sess_dev_${now}` };
if (args.azp) claims.azp = args.azp;
else if (vars.CLERK_AUTHORIZED_PARTIES) claims.azp = vars.CLERK_AUTHORIZED_PARTIES.split(",")[0].trim();

if (args.v1) {
	if (args.org)
		Object.assign(claims, { org_id: args.org, org_slug: args.slug ?? args.org, org_role: role, org_permissions: permissions });
} else {
	claims.v = 2;
	if (args.org) {
		// v2 packs permissions: features in `fea`, names in `o.per`, one bitmask per feature in `o.fpm`.
		const features = [];
		const names = [];
		for (const p of permissions) {
			const [, f, n] = p.split(":");
			if (!f || !n) continue;
			if (!features.includes(f)) features.push(f);
			if (!names.includes(n)) names.push(n);
		}
		const fpm = features.map((f) => names.reduce((m, n, bit) => (permissions.includes(`org:${f}:${n}`) ? m | (1 << bit) : m), 0));
		claims.fea = features.map((f) => `o:${f}`).join(",");
		claims.o = {
			id: args.org,
			slg: args.slug ?? args.org,
			rol: role.replace(/^org:/, ""),
			per: names.join(","),
			fpm: fpm.join(","),
		};
	}
}
const token = await new SignJWT(claims)
	.setProtectedHeader({ alg: "RS256", kid: jwk.kid, typ: "JWT" })
	.setIssuer(vars.CLERK_ISSUER ?? "https://clerk.dev.local")
	.setSubject(String(args.user))
	.setIssuedAt(now)
	.setNotBefore(now - 5)
	.setExpirationTime(now + Number(args.ttl ?? 3600))
	.sign(key);
process.stdout.write(`${token}\n`);
if (args.check) {
	const res = await fetch(`${baseUrl(args)}/api/me`, { headers: { authorization: `Bearer ${token}` } });
	const text = await res.text();
	console.error(`GET ${baseUrl(args)}/api/me: ${res.status} ${text}`);
	process.exit(res.ok ? 0 : 1);
}
