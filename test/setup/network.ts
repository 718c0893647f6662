import { afterEach, beforeEach, vi } from "vitest";
import { stubNetwork } from "../helpers/network";

// Every test starts with the network stubbed (Clerk JWKS served, everything else 404) and ends with
// every spy restored: test files only stub what they need differently.
beforeEach(() => {
	stubNetwork(vi);
});
afterEach(() => {
	vi.restoreAllMocks();
});
