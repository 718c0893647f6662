#!/usr/bin/env node
// Benchmarks against the built Worker served by Miniflare/workerd directly (not `wrangler dev`,
// whose proxy caps throughput), with the bindings and queue settings of wrangler.toml.
// Usage: npm run bench [-- identity|webhooks|latency|store|ratelimit|apikey|all|scale] [--seconds 5] [--concurrency 32]
//   identity : GET /api/health vs authenticated GET /api/me (target: me >= 60% of health)
//   webhooks : POST /api/webhooks/clerk ingest vs /api/health; 10,000 events through the queue consumer vs
//              a plain batch insert of the same rows (target ratio plain/consumer >= 0.5); then `latency`
//   latency  : 1,000 signed Clerk events at 100/s through ingest, queue and consumer: p50/p99 of the time
//              from each 202 to the event recorded as processed (target p99 < 1 s)
//   store    : POST /api/orgs/:orgId/products (a write in the tenant's store) vs the same write on the
//              shared D1 tables (a tenant the upgrade job has not moved yet): writes/s
//   ratelimit: a tenant route with lease-mode limits vs the same route unlimited (target >= 0.8), DO calls
//              per request, and admitted vs limit under a burst (target overshoot <= 1%)
//   apikey   : GET /api/orgs/:orgId with a tenant API key vs the same route with a session token, lease-mode
//              limits as deployed (target key/session >= 0.9)
//   scale    : rows read per page as a tenant grows, audit verify on a 1M chain, 10,000 tenant stores, one
//              tenant's req/s (bench/scale.mjs, its own bench-only Worker entry; not in "all")
//   cost     : each route's req/s, latency and workerd CPU per request vs bare Hono, raw D1 and Durable
//              Object SELECTs, Clerk's verifyToken and hono/jwk; startup and bundle (bench/cost.mjs; not in "all")
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from "jose";
import { Miniflare } from "miniflare";
import { Webhook } from "svix";
import { unstable_readConfig } from "wrangler";
import { applyD1Migrations, parseArgs, ROOT } from "../scripts/lib.mjs";
import { COST_HELP, cost } from "./cost.mjs";

const args = parseArgs(process.argv.slice(2));
if (args.help) {
	console.log(`usage: npm run bench [-- identity|webhooks|latency|store|ratelimit|apikey|all|scale|cost] [options]
  Builds the Worker (wrangler deploy --dry-run into bench/.out) and serves it with Miniflare; load from Node.
  identity|webhooks|latency|store|ratelimit|apikey|all  which benchmark (default all)
  --seconds <n>      seconds per measured route and round (default 5)
  --concurrency <n>  concurrent connections (default 32)
  --rounds <n>       interleaved rounds; the median round counts (default 3)
  --events <n>       latency: events sent (default 1000)
  --rate <n>         latency: events per second (default 100)
  scale              rows read per page at 1k/10k/100k rows, audit verify on a 1M chain, 10,000 tenant
                     stores, one tenant's req/s (not in "all"; see bench/scale.mjs); options:
                     --sizes 1000,10000,100000 --chain 1000000 --tenants 10000
${COST_HELP}
  --help             this text`);
	process.exit(0);
}
const which = args._[0] ?? "all";
const SECONDS = Number(args.seconds ?? 5);
const CONCURRENCY = Number(args.concurrency ?? 32);
const OUT = join(ROOT, "bench", ".out");
const ISSUER = "https://clerk.bench.local";
const WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

function build() {
	execFileSync(join(ROOT, "node_modules", ".bin", "wrangler"), ["deploy", "--dry-run", "--outdir", OUT], {
		cwd: ROOT,
		stdio: ["ignore", "ignore", "inherit"],
		env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" },
	});
}

/**
 * The Worker's bindings as wrangler.toml declares them (queue consumer settings included: the latency
 * benchmark measures the batching configured there), in Miniflare's terms.
 */
function configuredBindings() {
	const config = unstable_readConfig({ config: join(ROOT, "wrangler.toml") }, { hideWarnings: true });
	const sqlite = new Set(config.migrations.flatMap((m) => m.new_sqlite_classes ?? []));
	return {
		compatibilityDate: config.compatibility_date,
		compatibilityFlags: config.compatibility_flags,
		queueProducers: Object.fromEntries(config.queues.producers.map((p) => [p.binding, { queueName: p.queue }])),
		queueConsumers: Object.fromEntries(
			config.queues.consumers.map((c) => [
				c.queue,
				{
					maxBatchSize: c.max_batch_size,
					maxBatchTimeout: c.max_batch_timeout,
					maxRetries: c.max_retries,
					deadLetterQueue: c.dead_letter_queue,
				},
			]),
		),
		durableObjects: Object.fromEntries(
			config.durable_objects.bindings.map((b) => [b.name, { className: b.class_name, useSQLite: sqlite.has(b.class_name) }]),
		),
	};
}
const CONFIGURED = configuredBindings();

const keys = await generateKeyPair("RS256", { extractable: true });
const pem = await exportSPKI(keys.publicKey);
const kid = (await exportJWK(keys.publicKey)).n.slice(0, 8);

async function start(vars = {}) {
	const dbId = `bench-${Date.now()}`;
	const main = {
		name: "main",
		modules: true,
		scriptPath: join(OUT, "index.js"),
		...CONFIGURED,
		d1Databases: { DB: dbId },
		bindings: {
			CLERK_ISSUER: ISSUER,
			CLERK_JWT_KEY: pem,
			CLERK_WEBHOOK_SECRET: WEBHOOK_SECRET,
			LOG_LEVEL: "error",
			RATE_LIMIT_MODE: "off",
			...vars,
		},
	};
	// The baseline for the consumer benchmark: plain INSERTs run inside workerd against the same D1,
	// so both sides pay the same costs (no proxy round trips from Node per statement).
	const baseline = {
		name: "baseline",
		modules: true,
		compatibilityDate: "2026-04-20",
		d1Databases: { DB: dbId },
		script: `export default { async fetch(req, env) {
			const rows = await req.json();
			const stmts = [];
			for (const r of rows) {
				stmts.push(env.DB.prepare("INSERT INTO users (id, email, first_name, last_name, source_updated_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)").bind(r.id, r.email, r.first, r.last, r.ts, r.ts, r.ts));
				stmts.push(env.DB.prepare("INSERT INTO events (svix_id, type, entity_id, payload, event_timestamp, received_at, processed_at, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, 'processed')").bind(r.id, r.type, r.id, r.payload, r.ts, r.ts, r.ts));
			}
			await env.DB.batch(stmts);
			return new Response("ok");
		} }`,
	};
	const mf = new Miniflare({ workers: [main, baseline] });
	const url = await mf.ready;
	const db = await mf.getD1Database("DB");
	await applyD1Migrations(db);
	const now = Date.now();
	await db.batch([
		db
			.prepare(
				"INSERT INTO organizations (id, name, slug, source_updated_at, created_at, updated_at, rate_limit_per_minute, user_rate_limit_per_minute, monthly_quota) VALUES ('org_bench', 'Bench', 'bench', 1, ?, ?, ?, ?, 1000000000000)",
			)
			.bind(now, now, Number(vars.BENCH_ORG_LIMIT ?? 1e9), Number(vars.BENCH_USER_LIMIT ?? 1e9)),
		db
			.prepare(
				"INSERT INTO users (id, email, source_updated_at, created_at, updated_at) VALUES ('user_bench', 'b@bench.local', 1, ?, ?)",
			)
			.bind(now, now),
		db
			.prepare(
				"INSERT INTO memberships (id, organization_id, user_id, role, source_updated_at, created_at, updated_at, user_email) VALUES ('orgmem_bench', 'org_bench', 'user_bench', 'org:admin', 1, ?, ?, 'b@bench.local')",
			)
			.bind(now, now),
		// A tenant still on the shared D1 tables (store_state 'd1': the upgrade job has not moved it).
		db
			.prepare(
				"INSERT INTO organizations (id, name, slug, source_updated_at, created_at, updated_at, rate_limit_per_minute, user_rate_limit_per_minute, monthly_quota, store_state) VALUES ('org_bench_d1', 'Bench D1', 'bench-d1', 1, ?, ?, 1000000000, 1000000000, 1000000000000, 'd1')",
			)
			.bind(now, now),
		db
			.prepare(
				"INSERT INTO memberships (id, organization_id, user_id, role, source_updated_at, created_at, updated_at, user_email) VALUES ('orgmem_bench_d1', 'org_bench_d1', 'user_bench', 'org:admin', 1, ?, ?, 'b@bench.local')",
			)
			.bind(now, now),
	]);
	return { mf, url: url.toString().replace(/\/$/, ""), db };
}

async function token(orgId = "org_bench") {
	const t = Math.floor(Date.now() / 1000);
	return new SignJWT({
		v: 2,
		sid: "sess_bench",
		fea: "o:members",
		o: { id: orgId, slg: orgId.replaceAll("_", "-"), rol: "admin", per: "read", fpm: "1" },
	})
		.setProtectedHeader({ alg: "RS256", kid })
		.setIssuer(ISSUER)
		.setSubject("user_bench")
		.setIssuedAt(t)
		.setExpirationTime(t + 3600)
		.sign(keys.privateKey);
}

/** Closed-loop load: CONCURRENCY workers for SECONDS; returns rps and latency percentiles. */
async function load(name, makeRequest, { seconds = SECONDS, concurrency = CONCURRENCY, expect = 200 } = {}) {
	const lat = [];
	let errors = 0;
	const statuses = {};
	// Warm-up (JIT, caches) for a second, so the first route measured is not penalised.
	let n = 1_000_000;
	const warmEnd = performance.now() + 1000;
	await Promise.all(
		Array.from({ length: concurrency }, async () => {
			while (performance.now() < warmEnd) await (await fetch(...makeRequest(n++))).arrayBuffer();
		}),
	);
	const n0 = n - 1_000_000;
	n = 0;
	const end = performance.now() + seconds * 1000;
	const started = performance.now();
	await Promise.all(
		Array.from({ length: concurrency }, async () => {
			while (performance.now() < end) {
				const i = n++;
				const t0 = performance.now();
				const res = await fetch(...makeRequest(i));
				await res.arrayBuffer();
				lat.push(performance.now() - t0);
				statuses[res.status] = (statuses[res.status] ?? 0) + 1;
				if (res.status !== expect) errors++;
			}
		}),
	);
	const elapsed = (performance.now() - started) / 1000;
	lat.sort((a, b) => a - b);
	const pct = (p) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))].toFixed(2);
	const r = {
		name,
		requests: lat.length,
		warmup: n0,
		rps: Math.round(lat.length / elapsed),
		p50: pct(0.5),
		p99: pct(0.99),
		errors,
		statuses,
	};
	console.log(
		`${name.padEnd(34)} ${String(r.rps).padStart(7)} req/s   p50 ${r.p50.padStart(6)} ms   p99 ${r.p99.padStart(6)} ms   ${JSON.stringify(statuses)}`,
	);
	return r;
}

const ROUNDS = Number(args.rounds ?? 3);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Runs each target for SECONDS, ROUNDS times, interleaved (a b c a b c …), and keeps the median
 * round per target: one noisy round (GC, the other core busy) cannot decide a ratio.
 */
async function interleaved(targets) {
	const results = Object.fromEntries(targets.map((t) => [t.name, []]));
	for (let r = 0; r < ROUNDS; r++) {
		for (const t of targets) results[t.name].push(await load(`${t.name} (round ${r + 1})`, t.make, t.opts));
	}
	const out = {};
	for (const t of targets) {
		const rs = results[t.name];
		const m = median(rs.map((x) => x.rps));
		out[t.name] = { ...rs.find((x) => x.rps === m), rps: m, requests: rs.reduce((a, x) => a + x.requests + x.warmup, 0) };
	}
	return out;
}

async function identity() {
	console.log(`\n# identity: ${SECONDS}s per route x ${ROUNDS} interleaved rounds, concurrency ${CONCURRENCY}, rate limits off`);
	const { mf, url } = await start();
	const auth = { authorization: `Bearer ${await token()}` };
	const r = await interleaved([
		{ name: "GET /api/health", make: () => [`${url}/api/health`] },
		{ name: "GET /api/me (Bearer)", make: () => [`${url}/api/me`, { headers: auth }] },
		{ name: "GET /api/orgs/:orgId (Bearer)", make: () => [`${url}/api/orgs/org_bench`, { headers: auth }] },
	]);
	const [health, me, org] = [r["GET /api/health"], r["GET /api/me (Bearer)"], r["GET /api/orgs/:orgId (Bearer)"]];
	console.log(`median req/s: health ${health.rps}, me ${me.rps}, org ${org.rps}`);
	console.log(
		`ratio /api/me / /api/health = ${(me.rps / health.rps).toFixed(2)} (target >= 0.60); /api/orgs/:id = ${(org.rps / health.rps).toFixed(2)}`,
	);
	await mf.dispose();
	return { health, me, ratio: me.rps / health.rps };
}

function clerkEvent(i, now = Date.now()) {
	const id = `user_b${i}`;
	return {
		data: {
			id,
			object: "user",
			first_name: "Bench",
			last_name: String(i),
			primary_email_address_id: `idn_${i}`,
			email_addresses: [{ id: `idn_${i}`, email_address: `${id}@bench.local`, object: "email_address" }],
			created_at: now,
			updated_at: now,
		},
		object: "event",
		type: "user.created",
		timestamp: now,
		instance_id: "ins_bench",
	};
}

async function webhooks() {
	console.log(`\n# webhooks: ingest vs health (${SECONDS}s each), then 10,000 events through the consumer`);
	const { mf, url, db } = await start();
	const wh = new Webhook(WEBHOOK_SECRET);
	const bodies = Array.from({ length: 200 }, (_, i) => JSON.stringify(clerkEvent(1_000_000 + i)));
	const health = await load("GET /api/health", () => [`${url}/api/health`]);
	const ingest = await load(
		"POST /api/webhooks/clerk",
		(i) => {
			const body = bodies[i % bodies.length];
			const id = `msg_ingest_${i}`;
			const ts = new Date();
			return [
				`${url}/api/webhooks/clerk`,
				{
					method: "POST",
					body,
					headers: {
						"content-type": "application/json",
						"svix-id": id,
						"svix-timestamp": String(Math.floor(ts / 1000)),
						"svix-signature": wh.sign(id, ts, body),
					},
				},
			];
		},
		{ expect: 202 },
	);
	console.log(`ratio ingest / health = ${(ingest.rps / health.rps).toFixed(2)}`);

	// Consumer: the Worker's queue handler, called with batches of 50 as Queues would deliver them.
	const N = 10_000;
	const worker = await mf.getWorker();
	const t0 = performance.now();
	for (let b = 0; b < N / 50; b++) {
		const messages = Array.from({ length: 50 }, (_, j) => {
			const i = b * 50 + j;
			const event = clerkEvent(i);
			return {
				id: `m${i}`,
				timestamp: new Date(),
				attempts: 1,
				body: {
					source: "clerk",
					svixId: `msg_sync_${i}`,
					type: event.type,
					timestamp: event.timestamp,
					receivedAt: Date.now(),
					body: JSON.stringify(event),
				},
			};
		});
		const r = await worker.queue("webhook-events", messages);
		if (r.outcome !== "ok" || r.retryMessages.length > 0) throw new Error(`consumer batch failed: ${JSON.stringify(r)}`);
	}
	const consumerMs = performance.now() - t0;
	const synced = await db
		.prepare("SELECT count(*) AS n FROM events WHERE svix_id LIKE 'msg_sync_%' AND outcome = 'processed'")
		.first();

	// Baseline: the same user rows and raw event rows with plain INSERTs, same batch size, no ordering logic.
	const base = await mf.getWorker("baseline");
	const t1 = performance.now();
	for (let b = 0; b < N / 50; b++) {
		const rows = Array.from({ length: 50 }, (_, j) => {
			const i = b * 50 + j;
			const e = clerkEvent(i);
			return {
				id: `plain_${i}`,
				email: `${i}@b`,
				first: "Bench",
				last: String(i),
				ts: e.timestamp,
				type: e.type,
				payload: JSON.stringify(e),
			};
		});
		const res = await base.fetch("http://baseline/", { method: "POST", body: JSON.stringify(rows) });
		if (!res.ok) throw new Error(`baseline failed: ${await res.text()}`);
	}
	const plainMs = performance.now() - t1;
	console.log(
		`consumer: ${N} events in ${consumerMs.toFixed(0)} ms (${Math.round(N / (consumerMs / 1000))} events/s), ${synced.n} recorded as processed`,
	);
	console.log(`plain batch insert of the same rows: ${plainMs.toFixed(0)} ms`);
	console.log(`ratio plain / consumer = ${(plainMs / consumerMs).toFixed(2)} (target >= 0.50)`);
	await mf.dispose();
	return { ingest, health, ratio: plainMs / consumerMs };
}

const sleepUntil = (t) => new Promise((resolve) => setTimeout(resolve, Math.max(0, t - performance.now())));
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

/**
 * 202 -> processed: EVENTS signed Clerk events sent at RATE per second (open loop: each at its slot,
 * whatever the answers before it), through ingest, the local queue (batching as wrangler.toml sets it)
 * and the consumer. An event counts as processed when its events row says so: D1 is polled every
 * POLL_MS, so each figure is late by up to POLL_MS (half of it on average).
 */
async function latency() {
	const EVENTS = Number(args.events ?? 1000);
	const RATE = Number(args.rate ?? 100);
	const POLL_MS = 20;
	const consumer = CONFIGURED.queueConsumers["webhook-events"];
	console.log(
		`\n# webhook latency: ${EVENTS} events at ${RATE}/s, 202 -> processed (consumer: batches of ${consumer.maxBatchSize}, max_batch_timeout ${consumer.maxBatchTimeout} s)`,
	);
	const { mf, url, db } = await start();
	const wh = new Webhook(WEBHOOK_SECRET);
	// Warm-up: compile the ingest route and the consumer before the clock runs.
	const send = async (i, prefix) => {
		const body = JSON.stringify(clerkEvent(3_000_000 + i));
		const id = `${prefix}${i}`;
		const ts = new Date();
		const res = await fetch(`${url}/api/webhooks/clerk`, {
			method: "POST",
			body,
			headers: {
				"content-type": "application/json",
				"svix-id": id,
				"svix-timestamp": String(Math.floor(ts / 1000)),
				"svix-signature": wh.sign(id, ts, body),
			},
		});
		await res.arrayBuffer();
		return res.status;
	};
	for (let i = 0; i < 20; i++) await send(EVENTS + i, "msg_warm_");
	const warmDeadline = Date.now() + 15_000;
	while ((await db.prepare("SELECT count(*) AS n FROM events WHERE svix_id LIKE 'msg_warm_%'").first()).n < 20) {
		if (Date.now() > warmDeadline) throw new Error("warm-up events were not processed within 15 s");
		await new Promise((r) => setTimeout(r, 50));
	}
	const { m: startRowid } = await db.prepare("SELECT coalesce(max(rowid), 0) AS m FROM events").first();

	const accepted = new Map(); // svix id -> Date.now() when its 202 arrived
	const processed = new Map(); // svix id -> Date.now() when the poll first saw it processed
	let refused = 0;
	let polling = true;
	let lastRowid = startRowid;
	const poller = (async () => {
		while (polling) {
			const { results } = await db
				.prepare("SELECT rowid AS r, svix_id AS id, outcome FROM events WHERE rowid > ? ORDER BY rowid")
				.bind(lastRowid)
				.all();
			const seen = Date.now();
			for (const row of results) {
				lastRowid = Math.max(lastRowid, row.r);
				if (row.outcome === "processed" && !processed.has(row.id)) processed.set(row.id, seen);
			}
			await new Promise((r) => setTimeout(r, POLL_MS));
		}
	})();
	const t0 = performance.now();
	const sends = [];
	for (let i = 0; i < EVENTS; i++) {
		await sleepUntil(t0 + (i * 1000) / RATE);
		sends.push(
			send(i, "msg_lat_").then((status) => {
				if (status === 202) accepted.set(`msg_lat_${i}`, Date.now());
				else refused++;
			}),
		);
	}
	await Promise.all(sends);
	const sentSeconds = (performance.now() - t0) / 1000;
	const deadline = Date.now() + 60_000;
	while (processed.size < accepted.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
	polling = false;
	await poller;
	const lat = [...accepted].filter(([id]) => processed.has(id)).map(([id, at]) => processed.get(id) - at);
	lat.sort((a, b) => a - b);
	const missing = accepted.size - lat.length;
	console.log(
		`sent ${EVENTS} in ${sentSeconds.toFixed(1)} s (${(EVENTS / sentSeconds).toFixed(0)}/s): ${accepted.size} x 202, ${refused} refused, ${missing} not processed within 60 s`,
	);
	const r = { p50: percentile(lat, 0.5), p90: percentile(lat, 0.9), p99: percentile(lat, 0.99), max: lat.at(-1) };
	console.log(
		`202 -> processed: p50 ${r.p50} ms, p90 ${r.p90} ms, p99 ${r.p99} ms, max ${r.max} ms (target p99 < 1000 ms; poll every ${POLL_MS} ms)`,
	);
	await mf.dispose();
	return r;
}

/**
 * Tenant writes: POST /api/orgs/:orgId/products (201, a new SKU each) for a tenant in its own store
 * (one Durable Object call from the Worker, the write and its outbox rows in one store transaction)
 * and for a tenant still on the shared D1 tables, interleaved rounds, median round.
 */
async function store() {
	console.log(`\n# store writes: POST /api/orgs/:orgId/products, ${SECONDS}s x ${ROUNDS} interleaved rounds, concurrency ${CONCURRENCY}`);
	const { mf, url } = await start();
	const write = (orgId, auth, tag) => (i) => [
		`${url}/api/orgs/${orgId}/products`,
		{
			method: "POST",
			headers: { ...auth, "content-type": "application/json" },
			body: JSON.stringify({ name: `Bench ${i}`, sku: `${tag}-${i}-${Math.random().toString(36).slice(2, 8)}`, currency: "INR", priceMinor: 1200 }),
		},
	];
	const storeAuth = { authorization: `Bearer ${await token("org_bench")}` };
	const d1Auth = { authorization: `Bearer ${await token("org_bench_d1")}` };
	const r = await interleaved([
		{ name: "tenant store", make: write("org_bench", storeAuth, "S"), opts: { expect: 201 } },
		{ name: "shared D1 tables", make: write("org_bench_d1", d1Auth, "D"), opts: { expect: 201 } },
	]);
	const [inStore, inD1] = [r["tenant store"], r["shared D1 tables"]];
	console.log(`median writes/s: tenant store ${inStore.rps} (p50 ${inStore.p50} ms, p99 ${inStore.p99} ms), shared D1 tables ${inD1.rps} (p50 ${inD1.p50} ms, p99 ${inD1.p99} ms)`);
	console.log(`ratio store / D1 = ${(inStore.rps / inD1.rps).toFixed(2)}`);
	await mf.dispose();
	return { store: inStore, d1: inD1 };
}

async function doCalls(mf, keys) {
	const ns = await mf.getDurableObjectNamespace("RATE_LIMITER");
	let total = 0;
	for (const k of keys) total += (await ns.get(ns.idFromName(k)).stats()).calls;
	return total;
}

async function ratelimit() {
	console.log(`\n# rate limits: GET /api/orgs/:orgId, ${SECONDS}s each, concurrency ${CONCURRENCY}`);
	const keysUsed = ["org:org_bench", "org:org_bench:user:user_bench"];
	const auth = { authorization: `Bearer ${await token()}` };
	const huge = { BENCH_ORG_LIMIT: 100_000_000, BENCH_USER_LIMIT: 100_000_000 };
	const off = await start({ RATE_LIMIT_MODE: "off" });
	const lease = await start({ RATE_LIMIT_MODE: "lease", ...huge });
	const strict = await start({ RATE_LIMIT_MODE: "strict", ...huge });
	const r = await interleaved([
		{ name: "unlimited", make: () => [`${off.url}/api/orgs/org_bench`, { headers: auth }] },
		{ name: "limited, lease mode", make: () => [`${lease.url}/api/orgs/org_bench`, { headers: auth }] },
		{ name: "limited, strict mode", make: () => [`${strict.url}/api/orgs/org_bench`, { headers: auth }] },
	]);
	const [unlimited, leased, strictR] = [r.unlimited, r["limited, lease mode"], r["limited, strict mode"]];
	const leaseCalls = await doCalls(lease.mf, keysUsed);
	const strictCalls = await doCalls(strict.mf, keysUsed);
	for (const x of [off, lease, strict]) await x.mf.dispose();
	console.log(`median req/s: unlimited ${unlimited.rps}, lease ${leased.rps}, strict ${strictR.rps}`);
	console.log(
		`ratio lease / unlimited = ${(leased.rps / unlimited.rps).toFixed(2)} (target >= 0.80); strict / unlimited = ${(strictR.rps / unlimited.rps).toFixed(2)}`,
	);
	console.log(
		`DO calls per request: lease ${(leaseCalls / leased.requests).toFixed(3)}, strict ${(strictCalls / strictR.requests).toFixed(3)} (two buckets per request: tenant and user)`,
	);

	// Overshoot: a burst of 3x the limit within a few seconds, lease mode.
	const LIMIT = 2_000;
	const burst = await start({ RATE_LIMIT_MODE: "lease", BENCH_ORG_LIMIT: LIMIT, BENCH_USER_LIMIT: 100_000_000 });
	const t0 = performance.now();
	let admitted = 0;
	let n = 0;
	await Promise.all(
		Array.from({ length: CONCURRENCY }, async () => {
			while (n < LIMIT * 3) {
				n++;
				const res = await fetch(`${burst.url}/api/orgs/org_bench`, { headers: auth });
				await res.arrayBuffer();
				if (res.status === 200) admitted++;
			}
		}),
	);
	const secs = (performance.now() - t0) / 1000;
	const allowed = LIMIT + Math.floor((LIMIT / 60) * secs); // bucket capacity + refill during the burst
	console.log(
		`burst: ${LIMIT * 3} requests in ${secs.toFixed(1)} s against ${LIMIT}/min: admitted ${admitted}, token-bucket allowance ${allowed}, overshoot ${(((admitted - allowed) / LIMIT) * 100).toFixed(2)}% (target <= 1%)`,
	);
	await burst.mf.dispose();
	return { ratio: leased.rps / unlimited.rps };
}

/**
 * A tenant API key as POST /api/orgs/:orgId/api-keys makes one (auth/api-key.ts): `sk_live_` + base62 of
 * 32 random bytes, left-padded to 43 characters; D1 holds only the SHA-256 (hex) of the whole secret.
 */
async function seedApiKey(db, { orgId, permissions }) {
	const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	let n = BigInt(`0x${randomBytes(32).toString("hex")}`);
	let body = "";
	while (n > 0n) {
		body = ALPHABET[Number(n % 62n)] + body;
		n /= 62n;
	}
	const secret = `sk_live_${body.padStart(43, "0")}`;
	const id = "key_bench";
	const now = Date.now();
	await db
		.prepare(
			"INSERT INTO api_keys (id, organization_id, name, hash, last4, permissions, created_by, created_at, updated_at) VALUES (?, ?, 'bench', ?, ?, ?, 'user_bench', ?, ?)",
		)
		.bind(id, orgId, createHash("sha256").update(secret).digest("hex"), secret.slice(-4), JSON.stringify(permissions), now, now)
		.run();
	return { id, secret };
}

async function apikey() {
	console.log(
		`\n# api key vs session token: GET /api/orgs/:orgId, ${SECONDS}s per route x ${ROUNDS} interleaved rounds, concurrency ${CONCURRENCY}, lease-mode limits`,
	);
	// As deployed (RATE_LIMIT_MODE=lease), with limits no run reaches: each side takes its own bucket
	// (org:<id>:user:<id> or org:<id>:apikey:<id>) and the tenant's, and is metered.
	const { mf, url, db } = await start({ RATE_LIMIT_MODE: "lease", BENCH_ORG_LIMIT: 100_000_000, BENCH_USER_LIMIT: 100_000_000 });
	const key = await seedApiKey(db, { orgId: "org_bench", permissions: ["org:products:read"] });
	const session = { authorization: `Bearer ${await token()}` };
	const apiKey = { authorization: `Bearer ${key.secret}` };
	// Both answer the organization (the key with role null): a wrong setup fails here, not as a fast 401.
	for (const [who, headers] of [
		["session", session],
		["api key", apiKey],
	]) {
		const res = await fetch(`${url}/api/orgs/org_bench`, { headers });
		if (res.status !== 200) throw new Error(`${who}: GET /api/orgs/org_bench answered ${res.status}: ${await res.text()}`);
		await res.arrayBuffer();
	}
	const r = await interleaved([
		{ name: "GET /api/orgs/:orgId (session)", make: () => [`${url}/api/orgs/org_bench`, { headers: session }] },
		{ name: "GET /api/orgs/:orgId (api key)", make: () => [`${url}/api/orgs/org_bench`, { headers: apiKey }] },
	]);
	const [s, k] = [r["GET /api/orgs/:orgId (session)"], r["GET /api/orgs/:orgId (api key)"]];
	const lastUsed = await db.prepare("SELECT last_used_at AS t FROM api_keys WHERE id = ?").bind(key.id).first();
	await mf.dispose();
	console.log(`median req/s: session ${s.rps} (p50 ${s.p50} ms), api key ${k.rps} (p50 ${k.p50} ms)`);
	console.log(`last_used_at written behind: ${lastUsed.t ? new Date(lastUsed.t).toISOString() : "never"}`);
	console.log(`ratio api key / session = ${(k.rps / s.rps).toFixed(2)}x (target >= 0.90)`);
	return { session: s, apiKey: k, ratio: k.rps / s.rps };
}

if (which === "scale") {
	// Not part of "all": several minutes, its own Worker entry (bench/scale.mjs).
	const { scale } = await import("./scale.mjs");
	await scale(args);
} else if (which === "cost") await cost(args);
else build();
if (which === "identity" || which === "all") await identity();
if (which === "webhooks" || which === "all") await webhooks();
if (which === "webhooks" || which === "latency" || which === "all") await latency();
if (which === "store" || which === "all") await store();
if (which === "ratelimit" || which === "all") await ratelimit();
if (which === "apikey" || which === "all") await apikey();
