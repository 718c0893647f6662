#!/usr/bin/env node
// `npm run token -- --user <id> [--org <id>] [--role org:admin] [--slug demo] [--v1] [--ttl 3600] [--azp http://localhost:3000]`
// Prints a session token signed with the local development key, in Clerk's v2 claim format
// (`v: 2`, `o: {id, slg, rol, per, fpm}`, `fea`) or, with --v1, the old names (org_id, org_role, …).
import { existsSync, readFileSync } from "node:fs";
import { importJWK, SignJWT } from "jose";
import { DEV_KEY, parseArgs, ROLE_PERMISSIONS, readDevVars } from "./lib.mjs";

const args = parseArgs(process.argv.slice(2));
if (args.help || !args.user) {
	console.error(
		"usage: npm run token -- --user <userId> [--org <orgId>] [--role org:admin|org:member] [--slug <slug>] [--v1] [--ttl <seconds>] [--azp <origin>]",
	);
	process.exit(args.help ? 0 : 2);
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
