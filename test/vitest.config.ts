import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import type { Plugin } from "vitest/config";
import { defineConfig } from "vitest/config";
import { TEST_VARS } from "./helpers/vars.ts";

const root = path.resolve(import.meta.dirname, "..");

// Local Durable Object and D1 storage (Miniflare keeps it under the temporary directory) on tmpfs where the
// machine has one: a tenant store's SQLite file costs tens of ms to create and sync on disk, and the tenant
// store tests create hundreds of them. Nothing is kept between runs either way.
if (!process.env.TMPDIR && existsSync("/dev/shm")) process.env.TMPDIR = "/dev/shm";

/**
 * Hermetic configuration: wrangler loads `.dev.vars` (or, without one, `.env`/`.env.local`) from the directory of
 * the wrangler config it is given, and a developer's real values there (CLERK_JWT_KEY, …) would override the fake
 * Clerk instance the tests run against. The pool therefore reads a copy of wrangler.toml in an empty temporary
 * directory, so the only variables are wrangler.toml's [vars] and TEST_VARS. `main` is passed explicitly and the
 * migrations are read from the repository; the assets directory is rewritten to an absolute path.
 * scripts/check-hermetic.mjs proves it: it runs tests next to a populated .dev.vars and .env.
 */
function isolatedWranglerConfig(): string {
	// One directory per checkout (the config is loaded more than once per run), holding nothing but the copy.
	const dir = path.join(tmpdir(), `edge-tenant-test-${createHash("sha256").update(root).digest("hex").slice(0, 12)}`);
	mkdirSync(dir, { recursive: true });
	const configPath = path.join(dir, "wrangler.toml");
	// The one relative path the copy holds, [assets] directory, is made absolute (the /docs viewer files).
	const toml = readFileSync(path.join(root, "wrangler.toml"), "utf8").replace(
		/^(directory\s*=\s*)"\.\/public"/m,
		(_, key: string) => `${key}${JSON.stringify(path.join(root, "public"))}`,
	);
	writeFileSync(configPath, toml);
	return configPath;
}
// Never read process.env into the bindings either (wrangler's CLOUDFLARE_INCLUDE_PROCESS_ENV), nor .env files.
process.env.CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV = "false";
process.env.CLOUDFLARE_INCLUDE_PROCESS_ENV = "false";

/**
 * The stripe package ships source maps whose sources are not in the package: Vite warns once per file
 * ("Sourcemap for ".../node_modules/stripe/..." points to missing source files"), ~200 lines of noise per run.
 * Only that exact warning about files under node_modules/stripe/ is dropped; every other warning is printed.
 */
const STRIPE_SOURCEMAP_NOISE = /^Sourcemap for "[^"]*[\\/]node_modules[\\/]stripe[\\/][^"]*" points to missing source files$/;
/** Vitest installs its own Vite logger (so `customLogger` is overridden): filter it once the config is resolved. */
const quietStripeSourcemaps: Plugin = {
	name: "quiet-stripe-sourcemaps",
	configResolved({ logger }) {
		const { warn, warnOnce } = logger;
		logger.warn = (msg, options) => {
			if (!STRIPE_SOURCEMAP_NOISE.test(msg)) warn(msg, options);
		};
		logger.warnOnce = (msg, options) => {
			if (!STRIPE_SOURCEMAP_NOISE.test(msg)) warnOnce(msg, options);
		};
	},
};

export default defineConfig(async () => {
	const migrations = await readD1Migrations(path.join(root, "migrations"));
	return {
		root,
		// The Worker's aliases (wrangler.toml [alias]): zod's namespace without what the Worker never uses (nor its
		// JSON Schema generator), and the OpenAPI library without its document generator (the Worker serves the
		// document built in Node).
		// As the Worker bundle (wrangler.toml [define]): no OpenAPI texts (src/lib/openapi-text.d.ts).
		define: { OPENAPI_TEXT: "false" },
		resolve: {
			alias: [
				{ find: /^zod$/, replacement: path.join(root, "src/lib/zod/index.ts") },
				{ find: /^@asteasolutions\/zod-to-openapi$/, replacement: path.join(root, "src/lib/zod-to-openapi/index.ts") },
				// zod's JSON Schema generator, imported by these relative paths from zod's classic/schemas.js only.
				{ find: /^\.\.\/core\/(?:json-schema-processors|to-json-schema)\.js$/, replacement: path.join(root, "src/lib/zod/no-json-schema.ts") },
			],
		},
		plugins: [
			quietStripeSourcemaps,
			cloudflareTest({
				main: path.join(root, "src/index.ts"),
				wrangler: { configPath: isolatedWranglerConfig() },
				miniflare: {
					// Test-only bindings: the migrations (applied in setupFiles) and the vars a deployment sets.
					bindings: { TEST_MIGRATIONS: migrations, ...TEST_VARS },
				},
			}),
		],
		test: {
			include: ["test/**/*.test.ts"],
			// public/: the /docs viewer and the API document the Worker serves, built from the code under test.
			globalSetup: ["test/setup/assets.ts"],
			setupFiles: ["test/setup/apply-migrations.ts", "test/setup/network.ts", "test/setup/exchanges.ts"],
			// Every exchange with the Worker goes to dist/exchanges.json for `npm run check:exchanges`.
			reporters: ["default", "./scripts/exchange-reporter.mjs"],
			testTimeout: 20_000,
		},
	};
});
