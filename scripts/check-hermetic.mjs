#!/usr/bin/env node
// `node scripts/check-hermetic.mjs [vitest files…]` (run by .ci/run): proves the test suite is hermetic.
// Copies the project (src, test, migrations, configs; node_modules linked) into a temporary directory, writes a
// .dev.vars and a .env there with real-looking values as the README tells users to (a PEM CLERK_JWT_KEY, a
// publishable key, another issuer and webhook secret, provider base URLs, LOG_LEVEL=debug, a canary), then runs
// test/unit/hermetic.test.ts (every variable binding equals TEST_VARS) and a few suites that fail when a real Clerk
// key leaks in. Exits with vitest's status. The working copy (and its own .dev.vars) is never touched.
import { spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { copyProject, env, parseArgs, ROOT, usage } from "./lib.mjs";

const HELP = `usage: node scripts/check-hermetic.mjs [--keep] [test files...]
  Runs tests in a temporary copy of the project next to a populated .dev.vars and .env; fails if any value leaks in.
  test files   vitest files relative to the project (default: test/unit/hermetic.test.ts test/integration/orgs.test.ts
               test/integration/auth.security.test.ts)
  --keep       keep the temporary copy (its path is printed)
  --help       this text`;
const args = parseArgs(process.argv.slice(2));
usage(args, HELP);
const files = args._.length > 0 ? args._ : ["test/unit/hermetic.test.ts", "test/integration/orgs.test.ts", "test/integration/auth.security.test.ts"];

const dir = mkdtempSync(join(tmpdir(), "edge-tenant-hermetic-"));
copyProject(dir);

const pem = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ type: "spki", format: "pem" }).toString();
const populated = [
	"# what a user with a real Clerk development instance has (README: Pointing it at a real Clerk instance)",
	"CLERK_ISSUER=https://real-app.clerk.accounts.dev",
	"CLERK_JWKS_URL=https://real-app.clerk.accounts.dev/.well-known/jwks.json",
	`CLERK_JWT_KEY="${pem.trim().replaceAll("\n", "\\n")}"`,
	"CLERK_PUBLISHABLE_KEY=pk_test_cmVhbC1hcHAuY2xlcmsuYWNjb3VudHMuZGV2JA",
	"CLERK_WEBHOOK_SECRET=whsec_cmVhbHNlY3JldHJlYWxzZWNyZXRyZWFsc2VjcmV0",
	"CLERK_WEBHOOK_SIGNING_SECRET=whsec_b3RoZXJzZWNyZXRvdGhlcnNlY3JldG90aGVy",
	"CLERK_SECRET_KEY=sk_test_realbackendkey",
	"CLERK_AUTHORIZED_PARTIES=http://localhost:3000",
	"OPERATOR_USER_IDS=user_real_admin",
	"RAZORPAY_API_BASE=http://127.0.0.1:9",
	"STRIPE_API_BASE=http://127.0.0.1:9",
	"RATE_LIMIT_MODE=strict",
	"LOG_LEVEL=debug",
	"HERMETIC_CANARY=leaked",
	"",
].join("\n");
writeFileSync(join(dir, ".dev.vars"), populated);
writeFileSync(join(dir, ".env"), populated.replace("HERMETIC_CANARY=leaked", "HERMETIC_DOTENV_CANARY=leaked"));

console.log(`[check-hermetic] ${files.length} test file(s) next to a populated .dev.vars and .env in ${dir}`);
const vitest = join(ROOT, "node_modules", ".bin", "vitest");
const r = spawnSync(vitest, ["run", "--config", "test/vitest.config.ts", ...files], {
	cwd: dir,
	stdio: "inherit",
	// Even with process.env included by wrangler (CLOUDFLARE_INCLUDE_PROCESS_ENV), nothing may leak.
	env: { ...env, HERMETIC_PROCESS_CANARY: "leaked", CLOUDFLARE_INCLUDE_PROCESS_ENV: "true" },
});
if (args.keep) console.log(`[check-hermetic] kept ${dir}`);
else rmSync(dir, { recursive: true, force: true });
console.log(`[check-hermetic] ${r.status === 0 ? "ok: no .dev.vars/.env value reached the tests" : "FAILED"}`);
process.exit(r.status ?? 1);
