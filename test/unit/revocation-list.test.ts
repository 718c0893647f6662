import { describe, expect, it } from "vitest";
import {
	type RevocationRows,
	RevocationList,
	REVOCATION_MAX_STALENESS_MS,
	type RevocationSource,
} from "../../src/services/sessions";

// The per-isolate revocation list on an injected clock, against a counting source.

const T0 = 1_800_000_000_000;
const HOLD = 60 * 60_000;

function source() {
	const state = {
		rows: { sessions: [], users: [] } as RevocationRows,
		reads: [] as number[],
		/** When set, reads wait until release() is called. */
		gate: null as Promise<void> | null,
	};
	let release = () => {};
	const read: RevocationSource = async (since) => {
		state.reads.push(since);
		if (state.gate) await state.gate;
		return {
			sessions: state.rows.sessions.filter((r) => r.revokedAt > since),
			users: state.rows.users.filter((r) => r.revokedAt > since),
		};
	};
	const hold = () => {
		state.gate = new Promise((resolve) => {
			release = () => {
				state.gate = null;
				resolve();
			};
		});
	};
	return { state, read, hold, release: () => release() };
}

const session = (sid: string, revokedAt = T0) => ({ sid, revokedAt, expiresAt: T0 + HOLD });
const who = (sessionId: string | null, userId = "user_1", issuedAt?: number) => ({ userId, sessionId, issuedAt });

describe("revocation list", () => {
	it("reads D1 once per refresh, not once per request", async () => {
		const list = new RevocationList();
		const s = source();
		for (let i = 0; i < 100; i++) expect(await list.isRevoked(s.read, who("sess_a"), T0 + i * 25)).toBe(false);
		expect(s.state.reads).toHaveLength(1);
	});

	it("a revocation written after the last read is seen by the first request 5 s after that read", async () => {
		const list = new RevocationList();
		const s = source();
		expect(await list.isRevoked(s.read, who("sess_a"), T0)).toBe(false);
		s.state.rows.sessions.push(session("sess_a", T0 + 10));
		// No background hook: the list is used as it is until it turns stale.
		expect(await list.isRevoked(s.read, who("sess_a"), T0 + REVOCATION_MAX_STALENESS_MS - 1)).toBe(false);
		expect(await list.isRevoked(s.read, who("sess_a"), T0 + REVOCATION_MAX_STALENESS_MS)).toBe(true);
		expect(await list.isRevoked(s.read, who("sess_b"), T0 + REVOCATION_MAX_STALENESS_MS)).toBe(false);
		expect(s.state.reads).toHaveLength(2);
	});

	it("refreshes ahead in the background: the request does not wait, and one refresh runs at a time", async () => {
		const list = new RevocationList();
		const s = source();
		await list.isRevoked(s.read, who("sess_a"), T0);
		s.state.rows.sessions.push(session("sess_a", T0 + 10));
		s.hold();
		const background: Promise<unknown>[] = [];
		const bg = (p: Promise<unknown>) => background.push(p);
		// 3 s on: answered from the list it has while one refresh runs behind the request.
		expect(await list.isRevoked(s.read, who("sess_a"), T0 + 3_000, bg)).toBe(false);
		expect(await list.isRevoked(s.read, who("sess_a"), T0 + 3_100, bg)).toBe(false);
		expect(background).toHaveLength(1);
		s.release();
		await Promise.all(background);
		expect(await list.isRevoked(s.read, who("sess_a"), T0 + 3_200, bg)).toBe(true);
		// The background read counts from its start: no further read until 3 s after it.
		expect(s.state.reads).toHaveLength(2);
	});

	it("reads only rows newer than the newest seen (minus an overlap), never the whole table again", async () => {
		const list = new RevocationList();
		const s = source();
		s.state.rows.sessions.push(session("sess_a", T0 - 120_000));
		await list.isRevoked(s.read, who(null), T0);
		await list.isRevoked(s.read, who(null), T0 + REVOCATION_MAX_STALENESS_MS);
		expect(s.state.reads[0]).toBeLessThanOrEqual(0);
		expect(s.state.reads[1]).toBeGreaterThan(T0 - 240_000);
		expect(s.state.reads[1]).toBeLessThanOrEqual(T0 - 120_000);
	});

	it("a clock that went back refreshes instead of trusting the list", async () => {
		const list = new RevocationList();
		const s = source();
		await list.isRevoked(s.read, who("sess_a"), T0);
		s.state.rows.sessions.push(session("sess_a", T0 + 10));
		expect(await list.isRevoked(s.read, who("sess_a"), T0 - 60_000)).toBe(true);
	});

	it("user revocation: tokens issued at or before it are refused, later ones and other users are not", async () => {
		const list = new RevocationList();
		const s = source();
		const before = T0 - 1_000;
		s.state.rows.users.push({ userId: "user_1", revokedBefore: before, revokedAt: T0, expiresAt: T0 + HOLD });
		expect(await list.isRevoked(s.read, who("s1", "user_1", before / 1000 - 30), T0)).toBe(true);
		expect(await list.isRevoked(s.read, who("s1", "user_1", before / 1000), T0)).toBe(true);
		expect(await list.isRevoked(s.read, who("s1", "user_1", undefined), T0)).toBe(true);
		expect(await list.isRevoked(s.read, who("s1", "user_1", before / 1000 + 1), T0)).toBe(false);
		expect(await list.isRevoked(s.read, who("s1", "user_2", before / 1000 - 30), T0)).toBe(false);
	});

	it("expired revocations leave the isolate's memory", async () => {
		const list = new RevocationList();
		const s = source();
		s.state.rows.sessions.push({ sid: "sess_a", revokedAt: T0, expiresAt: Date.now() - 1 });
		expect(await list.isRevoked(s.read, who("sess_a"), T0)).toBe(false);
	});
});
