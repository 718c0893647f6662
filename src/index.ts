import { createApp } from "./app";
import type { Env } from "./env";
import { handleQueue, runScheduled } from "./queue/consumer";

export { RateLimiter } from "./durable-objects/rate-limiter";
export { UsageCounter } from "./durable-objects/usage-counter";
export { TenantStoreObject } from "./tenant-store/object";

const app = createApp();

export default {
	fetch: app.fetch,
	queue: (batch, env) => handleQueue(batch, env),
	scheduled: (_controller, env, ctx) => ctx.waitUntil(runScheduled(env)),
} satisfies ExportedHandler<Env, unknown>;
