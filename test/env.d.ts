import type { D1Migration } from "@cloudflare/vitest-pool-workers";
import type { Env as WorkerEnv } from "../src/env";

declare global {
	namespace Cloudflare {
		interface Env extends WorkerEnv {
			TEST_MIGRATIONS: D1Migration[];
		}
		// Types `exports` from "cloudflare:workers" as the Worker's own module.
		interface GlobalProps {
			mainModule: typeof import("../src/index");
		}
	}
}
