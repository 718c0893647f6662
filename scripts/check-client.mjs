#!/usr/bin/env node
// `npm run check:client` (run by .ci/run): the typed client works for a frontend. Builds dist/client
// (npm run build:client), checks that README.md's "Typed client" snippet is test/client/readme-snippet.ts word for
// word, and type-checks test/client (strict, DOM, no @cloudflare/workers-types, no skipLibCheck) against the
// package's "./client" export.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { env, parseArgs, ROOT, usage } from "./lib.mjs";

usage(
	parseArgs(process.argv.slice(2)),
	`usage: npm run check:client
  Builds dist/client, checks README.md's typed-client snippet equals test/client/readme-snippet.ts and
  type-checks test/client (a strict DOM project without workers types) against edge-tenant-backend/client.
  --help   this text`,
);

function run(cmd, args) {
	const r = spawnSync(cmd, args, { cwd: ROOT, stdio: "inherit", env });
	if (r.status !== 0) process.exit(r.status ?? 1);
}

const readme = readFileSync(join(ROOT, "README.md"), "utf8");
const section = readme.slice(readme.indexOf("### Typed client"));
const snippet = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
const file = readFileSync(join(ROOT, "test", "client", "readme-snippet.ts"), "utf8");
if (snippet !== file) {
	console.error("[check:client] README.md's Typed client snippet differs from test/client/readme-snippet.ts: keep them equal");
	process.exit(1);
}
run(process.execPath, [join(ROOT, "scripts", "client-types.mjs")]);
run(join(ROOT, "node_modules", ".bin", "tsc"), ["-p", join(ROOT, "test", "client")]);
console.log("[check:client] ok: test/client type-checks against edge-tenant-backend/client");
