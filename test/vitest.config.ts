import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";
import { TEST_VARS } from "./helpers/vars.ts";

const root = path.resolve(import.meta.dirname, "..");

export default defineConfig(async () => {
	const migrations = await readD1Migrations(path.join(root, "migrations"));
	return {
		root,
		plugins: [
			cloudflareTest({
				main: path.join(root, "src/index.ts"),
				wrangler: { configPath: path.join(root, "wrangler.toml") },
				miniflare: {
					// Test-only bindings: the migrations (applied in setupFiles) and the vars a deployment sets.
					bindings: { TEST_MIGRATIONS: migrations, ...TEST_VARS },
				},
			}),
		],
		test: {
			include: ["test/**/*.test.ts"],
			setupFiles: ["test/setup/apply-migrations.ts", "test/setup/network.ts"],
			testTimeout: 20_000,
		},
	};
});
