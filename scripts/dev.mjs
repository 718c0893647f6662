#!/usr/bin/env node
// `npm run dev`: prepares local state and starts `wrangler dev` with local D1, Queues and Durable Objects.
//  1. writes .dev.vars on first run (a local signing key, issuer, webhook secret) unless it exists;
//  2. applies D1 migrations to the local database;
//  3. seeds a demo organization (org_demo) with an admin (user_demo_admin) and a member (user_demo_member);
//  4. runs `wrangler dev` (extra arguments are passed through, e.g. `npm run dev -- --port 8788`).
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exportJWK, generateKeyPair } from "jose";
import { DEV_KEY, DEV_VARS, env, ROOT, readDevVars } from "./lib.mjs";

const wrangler = join(ROOT, "node_modules", ".bin", "wrangler");

async function ensureDevVars() {
	const vars = readDevVars();
	const realClerk = vars.CLERK_JWKS_URL || vars.CLERK_JWT_KEY;
	const lines = [];
	if (!existsSync(DEV_VARS)) {
		lines.push("# Written by `npm run dev` for local use only. Never deploy these values.");
		lines.push("# To use a real Clerk instance set CLERK_JWKS_URL (or CLERK_JWT_KEY) and CLERK_ISSUER here;");
		lines.push("# the local development key below is then ignored.");
	}
	if (!vars.CLERK_ISSUER) lines.push("CLERK_ISSUER=https://clerk.dev.local");
	if (!vars.CLERK_WEBHOOK_SECRET) lines.push(`CLERK_WEBHOOK_SECRET=whsec_${randomBytes(24).toString("base64")}`);
	if (!vars.OPERATOR_USER_IDS) lines.push("OPERATOR_USER_IDS=user_demo_admin");
	if (!realClerk && (!vars.DEV_JWT_PUBLIC_JWK || !existsSync(DEV_KEY))) {
		const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
		const kid = `dev-${randomBytes(6).toString("hex")}`;
		const pub = { ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" };
		writeFileSync(DEV_KEY, JSON.stringify({ ...(await exportJWK(privateKey)), kid, alg: "RS256" }), { mode: 0o600 });
		lines.push(`DEV_JWT_PUBLIC_JWK=${JSON.stringify(pub)}`);
		console.log(
			`[dev] generated a local signing key (${kid}); mint tokens with: npm run token -- --user user_demo_admin --org org_demo --role org:admin`,
		);
	}
	if (lines.length > 0) appendFileSync(DEV_VARS, `${lines.join("\n")}\n`);
}

function run(args) {
	const r = spawnSync(wrangler, args, { cwd: ROOT, stdio: "inherit", env: { ...env, CI: "true" } });
	if (r.status !== 0) process.exit(r.status ?? 1);
}

await ensureDevVars();
run(["d1", "migrations", "apply", "DB", "--local"]);
run(["d1", "execute", "DB", "--local", "--file", join(ROOT, "scripts", "seed.sql")]);
console.log("[dev] local D1 migrated and seeded: org_demo, user_demo_admin (org:admin), user_demo_member (org:member)");
const child = spawn(wrangler, ["dev", ...process.argv.slice(2)], { cwd: ROOT, stdio: "inherit", env });
child.on("exit", (code) => process.exit(code ?? 0));
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
