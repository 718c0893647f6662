import js from "@eslint/js";
import { defineConfig, globalIgnores } from "eslint/config";
import globals from "globals";
import tseslint from "typescript-eslint";

export default defineConfig(
	globalIgnores(["dist/", "coverage/", ".wrangler/", "bench/.out/", "public/", "worker-configuration.d.ts"]),
	js.configs.recommended,
	tseslint.configs.recommended,
	{
		rules: {
			// `_`-prefixed parameters and bindings are deliberately unused (tsconfig noUnusedParameters agrees).
			"@typescript-eslint/no-unused-vars": [
				"error",
				{ argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrorsIgnorePattern: "^_", ignoreRestSiblings: true },
			],
		},
	},
	{
		// The dev scripts and the benchmark run on Node.
		files: ["scripts/**/*.mjs", "bench/**/*.mjs"],
		languageOptions: { globals: globals.node },
	},
);
