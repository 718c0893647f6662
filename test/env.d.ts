import type { D1Migration } from "@cloudflare/vitest-pool-workers";

// The Worker's bindings come from ../worker-configuration.d.ts (wrangler types); tests add their migrations.
declare global {
	namespace Cloudflare {
		interface Env {
			TEST_MIGRATIONS: D1Migration[];
		}
	}
}
