#!/usr/bin/env node
// Writes the served OpenAPI document (GET /api/openapi.json) to a file, for `redocly lint` in CI.
// Starts the Worker locally (wrangler's unstable_dev: workerd, no network, no deploy) with no .dev.vars
// needed: the document route answers whatever the configuration.
//   node scripts/openapi-dump.mjs [--out <file>]   (default: dist/openapi.json)
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs, ROOT, servedOpenApiDocument } from "./lib.mjs";

const args = parseArgs(process.argv.slice(2));
if (args.help) {
	console.log("usage: node scripts/openapi-dump.mjs [--out <file>]   (default dist/openapi.json)");
	process.exit(0);
}
const out = resolve(typeof args.out === "string" ? args.out : join(ROOT, "dist", "openapi.json"));

const doc = await servedOpenApiDocument();
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(doc, null, 2)}\n`);
console.log(`wrote ${out} (${Object.keys(doc.paths ?? {}).length} paths)`);
