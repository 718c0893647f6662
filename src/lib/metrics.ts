/**
 * Operator metrics in Workers Analytics Engine (wrangler.toml `[[analytics_engine_datasets]]`, binding
 * METRICS, dataset `edge_tenant_metrics`): one data point per request the Worker answers and one per
 * queue batch it consumes, queried with the SQL API (README, "Metrics"). Writing is fire-and-forget
 * (writeDataPoint does no I/O the caller waits for) and never fails the request or the batch; where the
 * binding is absent (an environment without the dataset) nothing is written.
 *
 * Columns (the layout the README's queries rely on; add new fields at the end):
 * - request: index1 organization id ("-" when none: each tenant is sampled apart); blob1 "request",
 *   blob2 organization id ("" when none), blob3 route pattern (`/api/orgs/:orgId/products`, "(none)" when
 *   no route matched), blob4 method, blob5 status class ("2xx" … "5xx"), blob6 auth kind, blob7 trace id;
 *   double1 latency in ms, double2 status code.
 * - queue batch: index1 queue; blob1 "queue_batch", blob2 queue, blob3 outcome ("ok", or "error" when
 *   the handler threw: its undecided messages are retried); double1 messages, double2 acked, double3
 *   retried, double4 lag of the oldest message in ms (now - its enqueue time), double5 mean lag in ms,
 *   double6 handler duration in ms.
 */

/** How the caller authenticated: a session token in the Authorization header, the `__session` cookie,
 * a tenant API key, a provider signature (webhook routes), or no principal (public, or refused before). */
export type AuthKind = "session" | "cookie" | "api_key" | "signature" | "none";

export interface MetricsEnv {
	METRICS?: AnalyticsEngineDataset;
}

export interface RequestPoint {
	organizationId: string | null | undefined;
	route: string;
	method: string;
	status: number;
	durationMs: number;
	auth: AuthKind;
	traceId: string;
}

export interface BatchPoint {
	queue: string;
	messages: number;
	acked: number;
	retried: number;
	outcome: "ok" | "error";
	lagMaxMs: number;
	lagMeanMs: number;
	durationMs: number;
}

/** An index holds at most 96 bytes. */
const MAX_INDEX_CHARS = 96;

function write(env: MetricsEnv, point: AnalyticsEngineDataPoint): void {
	const dataset = env.METRICS;
	if (!dataset) return;
	try {
		dataset.writeDataPoint(point);
	} catch {
		// A metric is never worth a failed request or batch (a malformed point is a bug the tests catch).
	}
}

/** One request the Worker answered. */
export function recordRequest(env: MetricsEnv, p: RequestPoint): void {
	const org = p.organizationId ?? "";
	write(env, {
		indexes: [(org || "-").slice(0, MAX_INDEX_CHARS)],
		blobs: ["request", org, p.route, p.method, `${Math.floor(p.status / 100)}xx`, p.auth, p.traceId],
		doubles: [p.durationMs, p.status],
	});
}

/** One queue batch the Worker consumed. */
export function recordBatch(env: MetricsEnv, p: BatchPoint): void {
	write(env, {
		indexes: [p.queue.slice(0, MAX_INDEX_CHARS)],
		blobs: ["queue_batch", p.queue, p.outcome],
		doubles: [p.messages, p.acked, p.retried, p.lagMaxMs, p.lagMeanMs, p.durationMs],
	});
}

type Decision = "ack" | "retry";

/**
 * Watches a batch on its way through a consumer: the returned batch is the same batch whose messages
 * note their first ack()/retry() (the one the runtime keeps); `done` writes the batch's data point.
 * A message the consumer left undecided counts as acked when the handler returned and as retried when
 * it threw, as the runtime treats it.
 * @example const observed = observeBatch(env, batch); try { await run(observed.batch); observed.done("ok") } catch (e) { observed.done("error"); throw e }
 */
export function observeBatch<Body>(
	env: MetricsEnv,
	batch: MessageBatch<Body>,
	now: () => number = Date.now,
): { batch: MessageBatch<Body>; done(outcome: "ok" | "error"): void } {
	const started = now();
	const decided = new Map<string, Decision>();
	const decide = (id: string, d: Decision) => {
		if (!decided.has(id)) decided.set(id, d);
	};
	const messages: Message<Body>[] = batch.messages.map((m) => ({
		get id() {
			return m.id;
		},
		get timestamp() {
			return m.timestamp;
		},
		get body() {
			return m.body;
		},
		get attempts() {
			return m.attempts;
		},
		ack() {
			decide(m.id, "ack");
			m.ack();
		},
		retry(options?: QueueRetryOptions) {
			decide(m.id, "retry");
			m.retry(options);
		},
	}));
	const observed: MessageBatch<Body> = {
		queue: batch.queue,
		messages,
		get metadata() {
			return batch.metadata;
		},
		ackAll() {
			for (const m of batch.messages) decide(m.id, "ack");
			batch.ackAll();
		},
		retryAll(options?: QueueRetryOptions) {
			for (const m of batch.messages) decide(m.id, "retry");
			batch.retryAll(options);
		},
	};
	const lags = batch.messages.map((m) => Math.max(0, started - m.timestamp.getTime()));
	return {
		batch: observed,
		done(outcome) {
			let acked = 0;
			let retried = 0;
			for (const m of batch.messages) {
				const d = decided.get(m.id) ?? (outcome === "ok" ? "ack" : "retry");
				if (d === "ack") acked++;
				else retried++;
			}
			recordBatch(env, {
				queue: batch.queue,
				messages: batch.messages.length,
				acked,
				retried,
				outcome,
				lagMaxMs: lags.length > 0 ? Math.max(...lags) : 0,
				lagMeanMs: lags.length > 0 ? lags.reduce((a, b) => a + b, 0) / lags.length : 0,
				durationMs: now() - started,
			});
		},
	};
}
