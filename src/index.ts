import { createApp } from "./app";
import type { Env } from "./env";
import { handleQueue } from "./queue/consumer";

export { RateLimiter } from "./durable-objects/rate-limiter";

const app = createApp();

export default {
	fetch: app.fetch,
	queue: (batch, env) => handleQueue(batch, env),
} satisfies ExportedHandler<Env, unknown>;
