import { describe, expect, it } from "vitest";
import { upgradeFor } from "../../src/services/plans";

describe("upgradeFor: the plan a 402 suggests", () => {
	it.each([
		["free", "seats", 6, undefined, "pro"],
		["free", "seats", 51, undefined, "enterprise"],
		// Never the current plan or a cheaper one, even when it would have the seats.
		["pro", "seats", 6, undefined, "enterprise"],
		["enterprise", "seats", 6, undefined, null],
		["free", "seats", 1_001, undefined, null],
		// An override is kept by a plan change: no plan has more seats then.
		["pro", "seats", 3, { seatLimit: 2 }, null],
		["free", "seats", 6, { seatLimit: 5 }, null],
		["free", "seats", 6, { seatLimit: null }, "pro"],
		["free", "apiKeys", 3, undefined, "pro"],
		["pro", "apiKeys", 3, undefined, "enterprise"],
		["enterprise", "apiKeys", 1_001, undefined, null],
	] as const)("%s needing %s %d (overrides %o): %s", (plan, limit, needed, overrides, expected) => {
		expect(upgradeFor(plan, limit, needed, overrides)).toBe(expected);
	});
});
