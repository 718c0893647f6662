import { execFileSync } from "node:child_process";
import path from "node:path";
import type { TestProject } from "vitest/node";

const root = path.resolve(import.meta.dirname, "../..");

/**
 * The Worker's static assets (public/): the /docs viewer and the API document, which the Worker serves from
 * there (GET /api/openapi.json). Built here as wrangler builds them before dev and deploy, so the document
 * always describes the code under test, also under `npx vitest` (no npm pre-script) and after each change
 * in watch mode. Runs in Node, once per run (globalSetup in test/vitest.config.ts).
 */
function buildAssets() {
	execFileSync(process.execPath, [path.join(root, "scripts", "vendor-docs.mjs")], { cwd: root, stdio: "inherit" });
}

export default function setup(project: TestProject) {
	buildAssets();
	project.onTestsRerun(() => buildAssets());
}
