import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { TEST_VARS } from "../helpers/vars";

// The tests run against TEST_VARS only: a developer's .dev.vars or .env (real Clerk keys, provider base URLs, …)
// must not reach the test Worker (test/vitest.config.ts). scripts/check-hermetic.mjs runs this file next to a
// populated .dev.vars and .env, where any leaked variable makes it fail.
describe("hermetic test configuration", () => {
	it("every variable binding is exactly TEST_VARS (nothing from .dev.vars, .env or process.env)", () => {
		const vars = Object.fromEntries(Object.entries(env).filter(([, value]) => typeof value === "string"));
		expect(vars).toEqual(TEST_VARS);
	});
});
