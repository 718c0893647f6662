#!/usr/bin/env node
// Copies the API reference viewer (Redoc's standalone browser bundle, devDependency `redoc` pinned in
// package.json) from node_modules into the Workers static assets directory (wrangler.toml [assets]), so
// /docs works with no network. The copy is generated, git-ignored and refreshed by `npm install`/`npm ci`
// (prepare), `npm run dev`, `npm test`, `npm run build` and `npm run test:browser` (their pre-scripts).
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { ROOT } from "./lib.mjs";

// Served as /docs/<name> (src/routes/docs/docs.index.ts references /docs/redoc.standalone.js).
const ASSETS_DIR = join(ROOT, "public");
const TARGET_DIR = join(ASSETS_DIR, "docs");
const SCRIPT = "redoc.standalone.js";
const FILES = [SCRIPT, "redoc.standalone.js.LICENSE.txt"];
// The one change to the bundle: the sidebar footer's "API docs by Redocly" link shows a logo loaded from
// Redocly's CDN, unconditionally (no option turns it off). It becomes a transparent 1x1 image, so the
// page requests nothing from another origin (the link and its text stay). /docs' CSP would block it too.
const LOGO_URL = "https://cdn.redoc.ly/redoc/logo-mini.svg";
const BLANK_IMAGE = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7";

if (process.argv.includes("--help") || process.argv.includes("-h")) {
	console.log(`Usage: node scripts/vendor-docs.mjs [--verbose]

Copies ${FILES.join(", ")} from node_modules/redoc/bundles/ to public/docs/ (served by Workers static assets),
replacing the one image the bundle loads from Redocly's CDN with an inline blank image.
  --verbose   print what was copied
  --help      this text`);
	process.exit(0);
}

const require = createRequire(join(ROOT, "package.json"));
let pkgDir;
try {
	pkgDir = dirname(require.resolve("redoc/package.json"));
} catch {
	console.error("[vendor-docs] redoc is not installed: run `npm ci` (it is a devDependency)");
	process.exit(1);
}
const { version } = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
mkdirSync(TARGET_DIR, { recursive: true });
for (const name of FILES.filter((f) => f !== SCRIPT)) copyFileSync(join(pkgDir, "bundles", name), join(TARGET_DIR, name));
const bundle = readFileSync(join(pkgDir, "bundles", SCRIPT), "utf8");
const uses = bundle.split(LOGO_URL).length - 1;
if (uses !== 1) {
	// A new redoc version: look at what it loads from elsewhere (npm run test:browser checks) before adapting this.
	console.error(`[vendor-docs] redoc ${version}: expected ${LOGO_URL} once in ${SCRIPT}, found it ${uses} times`);
	process.exit(1);
}
writeFileSync(join(TARGET_DIR, SCRIPT), bundle.replace(LOGO_URL, BLANK_IMAGE));
if (process.argv.includes("--verbose")) console.log(`[vendor-docs] redoc ${version}: ${FILES.join(", ")} -> public/docs/`);
