import { describe, expect, it } from "vitest";
import { type Bucket, takeTokens } from "../../src/lib/token-bucket";

const MINUTE = 60_000;
const T0 = 1_000_000;

/** Takes in order from one bucket; returns the total granted and the last result. */
function run(takes: { limit: number; want: number; partial?: boolean; at: number }[], start: Bucket | null = null) {
	let bucket = start;
	let granted = 0;
	let last: ReturnType<typeof takeTokens>["result"] | undefined;
	for (const { at, ...req } of takes) {
		const r = takeTokens(bucket, { windowMs: MINUTE, ...req }, at);
		bucket = r.bucket;
		granted += r.result.granted;
		last = r.result;
	}
	return { granted, last: last!, bucket: bucket! };
}

describe("takeTokens: callers that disagree on the limit", () => {
	it("alternating leases at 1,200 and 120 at one instant grant at most 1,200 (each refilled it by 1,080 before)", () => {
		const takes = Array.from({ length: 100 }, (_, i) => ({ limit: i % 2 ? 120 : 1200, want: 1000, partial: true, at: T0 }));
		expect(run(takes).granted).toBeLessThanOrEqual(1200);
	});

	it("alternating one-token takes over a minute grant no more than the higher limit allows (1,200 at first, 1,200 refilled)", () => {
		const takes = Array.from({ length: 6000 }, (_, i) => ({ limit: i % 2 ? 120 : 1200, want: 1, at: T0 + i * 10 }));
		expect(run(takes).granted).toBeLessThanOrEqual(2400);
	});

	it("a raised limit applies at once, also after a lowered one once the bucket was full at it", () => {
		// 2 a minute, spent; raised to 100: 98 more at once.
		const spent = run([
			{ limit: 2, want: 1, at: T0 },
			{ limit: 2, want: 1, at: T0 },
			{ limit: 2, want: 1, at: T0 },
		]);
		expect(spent.granted).toBe(2);
		expect(takeTokens(spent.bucket, { limit: 100, windowMs: MINUTE, want: 1 }, T0).result).toMatchObject({ granted: 1, remaining: 97 });

		// 100, lowered to 10 and left to fill up at 10 (one minute), then raised to 100 again: full at once.
		const lowered = run([
			{ limit: 100, want: 50, at: T0 },
			{ limit: 10, want: 10, at: T0 },
			{ limit: 10, want: 1, at: T0 + MINUTE },
			{ limit: 10, want: 1, at: T0 + 2 * MINUTE },
		]);
		expect(takeTokens(lowered.bucket, { limit: 100, windowMs: MINUTE, want: 1 }, T0 + 2 * MINUTE).result.remaining).toBe(98);
	});
});

describe("takeTokens: the retry time", () => {
	it("is the wait for one token for a lease (partial), for the tokens wanted otherwise", () => {
		const empty = run([{ limit: 60, want: 60, at: T0 }]).bucket;
		expect(takeTokens({ ...empty }, { limit: 60, windowMs: MINUTE, want: 3, partial: true }, T0).result).toMatchObject({ granted: 0, retryAfterMs: 1000 });
		expect(takeTokens({ ...empty }, { limit: 60, windowMs: MINUTE, want: 1 }, T0).result).toMatchObject({ granted: 0, retryAfterMs: 1000 });
		expect(takeTokens({ ...empty }, { limit: 60, windowMs: MINUTE, want: 3 }, T0).result).toMatchObject({ granted: 0, retryAfterMs: 3000 });
	});
});
