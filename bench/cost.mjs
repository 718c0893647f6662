// `npm run bench -- cost` (issue 17): what a request costs, side by side with what it could cost.
//
// Every Worker here is built like the project (wrangler deploy --dry-run) and served by its own
// Miniflare instance, so each runs in its own workerd process: a route's CPU is that process's CPU
// time (/proc/<pid>/stat utime + stime) over a measured window, divided by the requests it served.
// Load comes from Node (closed loop, keep-alive connections); each target is measured in every round,
// rounds interleaved, and each figure is the median over the rounds.
//
// Targets: the project's routes (health, me, products list and create in the tenant's store) and
//   bare Hono    a Hono app answering JSON (bench/workers/hono.mjs): the baseline of the ratios
//   raw D1       the products list's SELECT on D1, no framework (bench/workers/raw-d1.mjs)
//   raw store    a Worker calling a SQLite Durable Object running that SELECT (bench/workers/raw-store.mjs)
//   Clerk SDK    @clerk/backend verifyToken, networkless on the same key (bench/workers/clerk.mjs)
//   hono/jwk     hono/jwk on the same key as a local JWK (bench/workers/jwk.mjs)
// plus startup (Miniflare ready time and workerd CPU at ready, vs an empty Worker with the project's
// bindings) and bundle size. The last lines are machine-readable (read by tools outside the project).
import { execFile, execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from "jose";
import { Miniflare } from "miniflare";
import { applyD1Migrations, ROOT } from "../scripts/lib.mjs";

const OUT = join(ROOT, "bench", ".out");
const COST_OUT = join(OUT, "cost");
const ISSUER = "https://clerk.bench.local";
const ORG = "org_bench";
/** Users (and client addresses) the load comes from, in turn (twice as many with --inner, whose load is
 * about twice the requests a second: each user's rate, and so its caches and leases, stay as they were). */
let CLIENTS = 64;
const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());

/** The comparison Workers, each bundled from bench/workers/<name>.mjs with the project's build settings. */
const PEERS = ["hono", "raw-d1", "raw-store", "clerk", "jwk"];

export const COST_HELP = `  cost               what each route costs vs bare Hono, a raw D1 SELECT, a raw Durable Object SELECT,
                     Clerk's verifyToken and hono/jwk; startup and bundle size (issue 17). Options:
                     --seconds <n> (default 5) --rounds <n> (default 5) --concurrency <n> (default 32)
                     --startup-rounds <n> (default 3) --no-build (reuse bench/.out)
                     --only <keys> (development: these targets and bare Hono, no summary lines)
                     --vars K=V,… (development: override the project's vars, e.g. LOG_LEVEL=warn)
                     --profile <key> (development: V8 profile of one of the project's targets; unminified build)
                     --inner <n> (development: each HTTP request runs the Worker's fetch n times inside the
                     isolate; CPU and req/s per inner request, the HTTP path's share divided by n;
                     p50/p99 stay per HTTP request)`;

export async function cost(args) {
	const SECONDS = Number(args.seconds ?? 5);
	const ROUNDS = Number(args.rounds ?? 5);
	const CONCURRENCY = Number(args.concurrency ?? 32);
	const STARTUP_ROUNDS = Number(args["startup-rounds"] ?? 3);
	const WARMUP_MS = Math.min(1000, SECONDS * 500);
	INNER = Number(args.inner ?? 0);
	CLIENTS = INNER ? 128 : 64;

	const { unstable_readConfig } = await import("wrangler");
	const config = unstable_readConfig({ config: join(ROOT, "wrangler.toml") }, { hideWarnings: true });
	if (!args["no-build"]) await (args.profile ? buildProfile() : buildAll(config));

	// --- keys and session tokens (the same for our /api/me and its peers) ----------------------------
	const keys = await generateKeyPair("RS256", { extractable: true });
	const pem = await exportSPKI(keys.publicKey);
	const publicJwk = await exportJWK(keys.publicKey);
	const kid = publicJwk.n.slice(0, 8);
	// The per-user (/api/me) and per-IP (/api/health) limits are 600 a minute: the load comes from
	// CLIENTS users and addresses in turn, each under its limit, so every answer is the route's own
	// (each key stays hot: its lease is spent before it expires, as for one busy client).
	const t = Math.floor(Date.now() / 1000);
	const sign = (userId) =>
		new SignJWT({ v: 2, sid: `sess_${userId}`, o: { id: ORG, slg: "bench", rol: "admin", per: "read", fpm: "1" } })
			.setProtectedHeader({ alg: "RS256", kid, typ: "JWT" })
			.setIssuer(ISSUER)
			.setSubject(userId)
			.setIssuedAt(t - 5)
			.setNotBefore(t - 5)
			.setExpirationTime(t + 3600)
			.sign(keys.privateKey);
	const users = Array.from({ length: CLIENTS }, (_, i) => `user_bench${i}`);
	const bearers = await Promise.all(users.map(async (u) => ({ authorization: `Bearer ${await sign(u)}` })));
	const auth = bearers[0];
	let turn = 0;
	const nextUser = () => bearers[turn++ % CLIENTS];
	const nextIp = () => ({ "cf-connecting-ip": `10.0.0.${turn++ % CLIENTS}` });

	// --- Worker definitions -------------------------------------------------------------------------
	const sqlite = new Set(config.migrations.flatMap((m) => m.new_sqlite_classes ?? []));
	const common = { modules: true, compatibilityDate: config.compatibility_date, compatibilityFlags: config.compatibility_flags };
	const projectBindings = {
		...common,
		d1Databases: { DB: "bench-cost" },
		queueProducers: Object.fromEntries(config.queues.producers.map((p) => [p.binding, { queueName: p.queue }])),
		queueConsumers: Object.fromEntries(
			config.queues.consumers.map((c) => [
				c.queue,
				{ maxBatchSize: c.max_batch_size, maxBatchTimeout: c.max_batch_timeout, maxRetries: c.max_retries, deadLetterQueue: c.dead_letter_queue },
			]),
		),
		durableObjects: Object.fromEntries(
			config.durable_objects.bindings.map((b) => [b.name, { className: b.class_name, useSQLite: sqlite.has(b.class_name) }]),
		),
		analyticsEngineDatasets: Object.fromEntries((config.analytics_engine_datasets ?? []).map((d) => [d.binding, { dataset: d.dataset }])),
		// wrangler.toml's vars as deployed (LOG_LEVEL info, RATE_LIMIT_MODE lease), the Clerk settings of a
		// networkless verifier (PEM key), and no tenant limit in the way.
		bindings: {
			...config.vars,
			CLERK_ISSUER: ISSUER,
			CLERK_JWT_KEY: pem,
			CLERK_WEBHOOK_SECRET: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			// --vars K=V,K=V: development experiments (e.g. LOG_LEVEL=warn).
			...Object.fromEntries(args.vars ? String(args.vars).split(",").map((kv) => kv.split("=", 2)) : []),
		},
	};
	const workers = {
		project: { ...projectBindings, name: "project", scriptPath: join(OUT, "index.js") },
		// Nothing but the project's bindings: its object classes exist and do nothing.
		empty: {
			...projectBindings,
			name: "empty",
			script: `import { DurableObject } from "cloudflare:workers";
${[...new Set(Object.values(projectBindings.durableObjects).map((d) => d.className))].map((c) => `export class ${c} extends DurableObject {}`).join("\n")}
export default { fetch: () => new Response("ok"), queue: () => {}, scheduled: () => {} };`,
		},
		hono: { ...common, name: "hono", scriptPath: peerScript("hono") },
		"raw-d1": { ...common, name: "raw-d1", scriptPath: peerScript("raw-d1"), d1Databases: { DB: "bench-cost-raw" } },
		"raw-store": {
			...common,
			name: "raw-store",
			scriptPath: peerScript("raw-store"),
			durableObjects: { RAW_STORE: { className: "RawStore", useSQLite: true } },
		},
		clerk: { ...common, name: "clerk", scriptPath: peerScript("clerk"), bindings: { CLERK_JWT_KEY: pem } },
		jwk: { ...common, name: "jwk", scriptPath: peerScript("jwk"), bindings: { PUBLIC_JWK: JSON.stringify({ ...publicJwk, kid, alg: "RS256" }) } },
	};

	console.log(
		`\n# cost: ${SECONDS}s per target x ${ROUNDS} interleaved rounds, concurrency ${CONCURRENCY}; medians; CPU = workerd process CPU per served request`,
	);

	// --- startup --------------------------------------------------------------------------------------
	const startupNames = ["empty", "project", "hono", "clerk"];
	const startupRuns = Object.fromEntries(startupNames.map((n) => [n, []]));
	for (let r = 0; r < STARTUP_ROUNDS; r++) {
		for (const name of startupNames) {
			const s = await serve(workers[name]);
			startupRuns[name].push({ ms: s.readyMs, cpuMs: s.cpuAtReadyMs });
			await s.mf.dispose();
		}
	}
	const startup = Object.fromEntries(
		startupNames.map((n) => [n, { ms: median(startupRuns[n].map((x) => x.ms)), cpuMs: median(startupRuns[n].map((x) => x.cpuMs)) }]),
	);

	// --- serve every target and seed the same 25 products everywhere --------------------------------
	const PROFILE = args.profile ? String(args.profile) : undefined;
	if (PROFILE) workers.project.scriptPath = join(OUT, "profile", "index.js");
	const project = await serve(workers.project, { inspector: Boolean(PROFILE) });
	const hono = await serve(workers.hono);
	const rawD1 = await serve(workers["raw-d1"]);
	const rawStore = await serve(workers["raw-store"]);
	const clerk = await serve(workers.clerk);
	const jwk = await serve(workers.jwk);
	// --against <index.js>: another build of the project served alongside (development: before/after).
	// (Copied under bench/.out: workerd refuses a module path outside the working directory.)
	if (args.against) {
		mkdirSync(join(OUT, "against"), { recursive: true });
		copyFileSync(resolve(String(args.against)), join(OUT, "against", "index.js"));
	}
	const against = args.against ? await serve({ ...workers.project, name: "against", scriptPath: join(OUT, "against", "index.js") }) : undefined;
	const instances = [project, hono, rawD1, rawStore, clerk, jwk, ...(against ? [against] : [])];
	try {
		const seeded = await seedProject(project);
		await applyD1Migrations(await rawD1.mf.getD1Database("DB"));
		// The same rows, as stored, in the raw baselines.
		const rows = seeded.map((p) => ({
			id: p.id,
			organization_id: ORG,
			category_id: p.categoryId,
			name: p.name,
			sku: p.sku,
			description: p.description,
			price_minor: p.priceMinor,
			currency: p.currency,
			status: p.status,
			stock: p.stock,
			version: p.version,
			created_at: p.createdAt,
			updated_at: p.updatedAt,
		}));
		const rawDb = await rawD1.mf.getD1Database("DB");
		const cols = Object.keys(rows[0]);
		await rawDb.batch(
			rows.map((r) =>
				rawDb.prepare(`INSERT INTO products (${cols.join(", ")}) VALUES (${cols.map(() => "?").join(", ")})`).bind(...cols.map((c) => r[c])),
			),
		);
		const seededRaw = await new Client(rawStore.url, 1).send({ method: "POST", path: "/seed", body: JSON.stringify(rows) });
		if (seededRaw.status !== 200) throw new Error(`seeding the raw store: ${seededRaw.status} ${seededRaw.body}`);

		// --- load ---------------------------------------------------------------------------------------
		let sku = 0;
		const products = `/api/orgs/${ORG}/products?limit=20`;
		const targets = [
			{ key: "hono", label: "bare Hono: GET JSON", at: hono, make: () => ({ path: "/api/health" }) },
			// `prime`: each client's first request (its token verified, its limits and caches set up) before
			// any measured window, as for clients that keep calling.
			{ key: "health", label: "GET /api/health", at: project, make: () => ({ path: "/api/health", headers: nextIp() }), prime: CLIENTS },
			{ key: "me", label: "GET /api/me (Bearer)", at: project, make: () => ({ path: "/api/me", headers: nextUser() }), prime: CLIENTS },
			{ key: "clerk", label: "Clerk verifyToken (Hono)", at: clerk, make: () => ({ path: "/api/me", headers: nextUser() }), prime: CLIENTS },
			{ key: "jwk", label: "hono/jwk (Hono)", at: jwk, make: () => ({ path: "/api/me", headers: nextUser() }), prime: CLIENTS },
			{ key: "products_read", label: "GET products?limit=20 (store)", at: project, make: () => ({ path: products, headers: auth }), check: 20 },
			{ key: "raw_d1", label: "raw D1 SELECT", at: rawD1, make: () => ({ path: "/products?limit=20" }), check: 20 },
			{ key: "raw_store", label: "raw Worker + DO SELECT", at: rawStore, make: () => ({ path: "/products?limit=20" }), check: 20 },
			{ key: "products_write", label: "POST products (store, audit)", at: project, make: () => postProduct(`b${sku++}`), expect: 201 },
		];
		if (against) {
			await seedProject(against);
			for (const tg of targets.filter((x) => x.at === project)) targets.push({ ...tg, key: `${tg.key}@against`, label: `${tg.label} [against]`, at: against });
		}
		for (const tg of targets) await checkTarget(tg);
		// --only a,b: measure only these (and bare Hono, the baseline), for development.
		if (args.only) {
			const only = new Set(["hono", ...String(args.only).split(",").flatMap((k) => [k, `${k}@against`])]);
			targets.splice(0, targets.length, ...targets.filter((tg) => only.has(tg.key)));
		}

		if (PROFILE) {
			const tg = targets.find((x) => x.key === PROFILE);
			if (!tg || tg.at !== project) throw new Error(`--profile: one of the project's targets (${targets.filter((x) => x.at === project).map((x) => x.key).join(", ")})`);
			await profile(project, tg, { seconds: SECONDS, concurrency: CONCURRENCY });
			return;
		}
		const runs = Object.fromEntries(targets.map((tg) => [tg.key, []]));
		for (let r = 0; r < ROUNDS; r++) {
			// Interleaved, and each round starts one target later: no target always follows the same one.
			for (let i = 0; i < targets.length; i++) {
				const tg = targets[(i + r) % targets.length];
				const m = await measure(tg, { seconds: SECONDS, concurrency: CONCURRENCY, warmupMs: WARMUP_MS });
				runs[tg.key].push(m);
				console.log(
					`  round ${r + 1} ${tg.label.padEnd(32)} ${String(m.rps).padStart(6)} req/s  p50 ${m.p50.toFixed(2).padStart(6)} ms  p99 ${m.p99.toFixed(2).padStart(7)} ms  ${String(Math.round(m.cpuUs)).padStart(6)} us CPU/req  ${JSON.stringify(m.statuses)}`,
				);
			}
		}
		const med = Object.fromEntries(
			targets.map((tg) => {
				const rs = runs[tg.key];
				return [tg.key, { label: tg.label, rps: median(rs.map((x) => x.rps)), p50: median(rs.map((x) => x.p50)), p99: median(rs.map((x) => x.p99)), cpuUs: median(rs.map((x) => x.cpuUs)), errors: rs.reduce((a, x) => a + x.errors, 0) }];
			}),
		);

		// --- report -------------------------------------------------------------------------------------
		const base = med.hono;
		const ratio = (a, b) => (a / b).toFixed(2);
		console.log(`\n| target | req/s | p50 ms | p99 ms | CPU us/req | req/s vs bare Hono | CPU vs bare Hono |`);
		console.log(`|---|---|---|---|---|---|---|`);
		for (const tg of targets) {
			const m = med[tg.key];
			console.log(
				`| ${m.label} | ${Math.round(m.rps)} | ${m.p50.toFixed(2)} | ${m.p99.toFixed(2)} | ${Math.round(m.cpuUs)} | ${ratio(m.rps, base.rps)} | ${ratio(m.cpuUs, base.cpuUs)} |${m.errors ? ` ${m.errors} unexpected statuses` : ""}`,
			);
		}
		const bundle = bundleSizes();
		if (!args.only) {
			console.log(
				`\npeers: /api/me vs Clerk verifyToken: req/s ${ratio(med.me.rps, med.clerk.rps)}, CPU ${ratio(med.me.cpuUs, med.clerk.cpuUs)}; vs hono/jwk: req/s ${ratio(med.me.rps, med.jwk.rps)}, CPU ${ratio(med.me.cpuUs, med.jwk.cpuUs)}`,
			);
			console.log(
				`products list vs raw D1 SELECT: req/s ${ratio(med.products_read.rps, med.raw_d1.rps)}, CPU ${ratio(med.products_read.cpuUs, med.raw_d1.cpuUs)}; vs raw Worker + DO SELECT: req/s ${ratio(med.products_read.rps, med.raw_store.rps)}, CPU ${ratio(med.products_read.cpuUs, med.raw_store.cpuUs)}`,
			);
		}
		console.log(
			`startup (Miniflare ready, median of ${STARTUP_ROUNDS}; workerd CPU at ready): empty Worker with the project's bindings ${startup.empty.ms} ms / ${startup.empty.cpuMs} ms CPU; project ${startup.project.ms} ms / ${startup.project.cpuMs} ms CPU (+${startup.project.ms - startup.empty.ms} ms); bare Hono ${startup.hono.ms} ms / ${startup.hono.cpuMs} ms CPU; Clerk SDK worker ${startup.clerk.ms} ms / ${startup.clerk.cpuMs} ms CPU`,
		);
		console.log(
			`bundle: project ${kib(bundle.project.gzip)} KiB gzip (${kib(bundle.project.raw)} KiB minified); bare Hono ${kib(bundle.hono.gzip)} KiB gzip; Clerk SDK worker ${kib(bundle.clerk.gzip)} KiB gzip`,
		);
		console.log(`load at the end: ${readFileSync("/proc/loadavg", "utf8").trim().split(" ").slice(0, 3).join(" ")} (${(await import("node:os")).cpus().length} cores)`);
		console.log();
		if (args.only) return;
		for (const k of ["health", "me", "products_read", "products_write"]) {
			console.log(`cost route=${k} cpu_ratio=${ratio(med[k].cpuUs, base.cpuUs)} rps_ratio=${ratio(med[k].rps, base.rps)}`);
		}
		console.log(`cost route=products_read_vs_d1 rps_ratio=${ratio(med.products_read.rps, med.raw_d1.rps)}`);
		console.log(`cost route=products_read_vs_raw rps_ratio=${ratio(med.products_read.rps, med.raw_store.rps)}`);
		console.log(`cost route=me_vs_clerk rps_ratio=${ratio(med.me.rps, med.clerk.rps)}`);
	} finally {
		for (const i of instances) await i.mf.dispose();
	}

	/** The directory's tenant and its members in D1, and the tenant's 25 products through the API. */
	async function seedProject(instance) {
	const db = await instance.mf.getD1Database("DB");
	await applyD1Migrations(db);
	const now = Date.now();
	await db.batch([
		db
			.prepare(
				"INSERT INTO organizations (id, name, slug, source_updated_at, created_at, updated_at, rate_limit_per_minute, user_rate_limit_per_minute, monthly_quota) VALUES (?, 'Bench', 'bench', 1, ?, ?, 1000000000, 1000000000, 1000000000000)",
			)
			.bind(ORG, now, now),
		...users.flatMap((u, i) => [
			db
				.prepare("INSERT INTO users (id, email, first_name, last_name, source_updated_at, created_at, updated_at) VALUES (?, ?, 'Bench', ?, 1, ?, ?)")
				.bind(u, `${u}@bench.local`, String(i), now, now),
			db
				.prepare(
					"INSERT INTO memberships (id, organization_id, user_id, role, source_updated_at, created_at, updated_at) VALUES (?, ?, ?, 'org:admin', 1, ?, ?)",
				)
				.bind(`orgmem_${u}`, ORG, u, now, now),
		]),
	]);
	// The tenant's 25 products through the API (its store creates itself on the first one).
	const client = new Client(instance.url, 4);
	for (let i = 0; i < 25; i++) {
		const res = await client.send(postProduct(`seed-${i}`));
		if (res.status !== 201) throw new Error(`seeding the tenant store: POST products answered ${res.status}: ${res.body}`);
	}
	const listed = await client.send({ path: `/api/orgs/${ORG}/products?limit=100`, headers: auth });
	const seeded = JSON.parse(listed.body).data;
	if (listed.status !== 200 || seeded.length !== 25) throw new Error(`seeding: the list answered ${listed.status} with ${seeded?.length} rows`);
	client.close();
	return seeded;
	}

	function postProduct(s) {
		return {
			method: "POST",
			path: `/api/orgs/${ORG}/products`,
			headers: { ...auth, "content-type": "application/json" },
			body: JSON.stringify({ name: `Bench product ${s}`, sku: `sku-${s}-${kid}`, priceMinor: 1999, currency: "INR", status: "active", stock: 10 }),
		};
	}
}

// --- build ------------------------------------------------------------------------------------------

const run = promisify(execFile);
const wrangler = join(ROOT, "node_modules", ".bin", "wrangler");
const wranglerEnv = { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1", CLOUDFLARE_CF_FETCH_ENABLED: "false" };
const peerScript = (name) => join(COST_OUT, name, `${name}.js`);

/** The project unminified (function names kept) into bench/.out/profile, for --profile. */
async function buildProfile() {
	await run(wrangler, ["deploy", "--dry-run", "--minify=false", "--outdir", join(OUT, "profile")], { cwd: ROOT, env: wranglerEnv });
}

/** The project (wrangler.toml) and each peer with the project's build settings (minify, compatibility). */
async function buildAll(config) {
	await run(wrangler, ["deploy", "--dry-run", "--outdir", OUT], { cwd: ROOT, env: wranglerEnv });
	for (const name of PEERS) {
		const dir = join(COST_OUT, name);
		mkdirSync(dir, { recursive: true });
		const peerConfig = {
			name: `bench-${name}`,
			main: join(ROOT, "bench", "workers", `${name}.mjs`),
			compatibility_date: config.compatibility_date,
			compatibility_flags: config.compatibility_flags,
			minify: config.minify,
			keep_names: config.keep_names,
		};
		writeFileSync(join(dir, "wrangler.json"), JSON.stringify(peerConfig, null, 2));
		await run(wrangler, ["deploy", "--dry-run", "--config", join(dir, "wrangler.json"), "--outdir", dir], { cwd: dir, env: wranglerEnv });
	}
}

const kib = (bytes) => (bytes / 1024).toFixed(1);
function bundleSizes() {
	const size = (file) => {
		const b = readFileSync(file);
		return { raw: b.length, gzip: gzipSync(b, { level: 9 }).length };
	};
	return { project: size(join(OUT, "index.js")), hono: size(peerScript("hono")), clerk: size(peerScript("clerk")) };
}

// --- serving ----------------------------------------------------------------------------------------

/** workerd processes that are children of this Node process. */
function workerdChildren() {
	const pids = new Set();
	for (const d of readdirSync("/proc")) {
		if (!/^\d+$/.test(d)) continue;
		try {
			const stat = readFileSync(`/proc/${d}/stat`, "utf8");
			const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
			const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
			if (comm === "workerd" && ppid === process.pid) pids.add(Number(d));
		} catch {
			// gone meanwhile
		}
	}
	return pids;
}

/** utime + stime of a process, in microseconds. */
function cpuUs(pid) {
	const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
	const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
	return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
}

/**
 * --inner <n>: the script behind a module that, for a request carrying `x-inner: <n>`, runs the
 * Worker's fetch n times on copies of it (each answer read whole) and answers the first that was not
 * a 2xx, else the last (so the statuses counted include every run's). A JSON body's `"sku"` gets the
 * run's number appended, so creates stay distinct. Everything else passes through.
 */
function innerLoopModules(scriptPath) {
	const dir = scriptPath.slice(0, scriptPath.lastIndexOf("/"));
	const name = scriptPath.slice(dir.length + 1);
	const wrapper = `import * as inner from "./${name}";
export * from "./${name}";
const app = inner.default;
const handler = {
	async fetch(req, env, ctx) {
		const n = Number(req.headers.get("x-inner") ?? 0);
		if (!n) return app.fetch(req, env, ctx);
		const body = req.method === "GET" ? null : await req.text();
		const headers = new Headers(req.headers);
		headers.delete("content-length");
		let res;
		let failed;
		for (let i = 0; i < n; i++) {
			const b = body === null ? null : body.replace(/"sku":"([^"]*)"/, (_, s) => \`"sku":"\${s}-\${i}"\`);
			res = await app.fetch(new Request(req.url, { method: req.method, headers, body: b }), env, ctx);
			if (!failed && !res.ok) failed = res;
			else if (i < n - 1) await res.arrayBuffer();
		}
		return failed ?? res;
	},
};
for (const k of ["queue", "scheduled"]) if (typeof app[k] === "function") handler[k] = (...a) => app[k](...a);
export default handler;
`;
	return [
		{ type: "ESModule", path: join(dir, "inner-loop.mjs"), contents: wrapper },
		{ type: "ESModule", path: scriptPath, contents: readFileSync(scriptPath, "utf8") },
	];
}
let INNER = 0;

/** One Worker in its own Miniflare instance (its own workerd process); runtime output is discarded. */
async function serve(worker, { inspector = false } = {}) {
	const before = workerdChildren();
	let errors = "";
	const t0 = performance.now();
	// The bundle handed over as its one module, as wrangler does (given only a scriptPath, Miniflare
	// parses the script in Node to find its imports: hundreds of ms that no deployed Worker pays).
	const { scriptPath, ...rest } = worker;
	const modules = scriptPath && INNER ? innerLoopModules(scriptPath) : scriptPath ? [{ type: "ESModule", path: scriptPath, contents: readFileSync(scriptPath, "utf8") }] : undefined;
	const mf = new Miniflare({
		workers: [modules ? { ...rest, modules } : worker],
		...(inspector ? { inspectorPort: 0 } : {}),
		handleRuntimeStdio: (stdout, stderr) => {
			stdout.resume();
			stderr.on("data", (chunk) => {
				errors = (errors + chunk).slice(-4000);
			});
		},
	});
	const url = await mf.ready.catch((err) => {
		throw new Error(`${worker.name}: ${err.message}\n${errors}`);
	});
	const readyMs = Math.round(performance.now() - t0);
	const spawned = [...workerdChildren()].filter((p) => !before.has(p));
	if (spawned.length !== 1) throw new Error(`expected one new workerd process for ${worker.name}, found ${spawned.length}`);
	const pid = spawned[0];
	return { name: worker.name, mf, url: url.toString().replace(/\/$/, ""), pid, readyMs, cpuAtReadyMs: Math.round(cpuUs(pid) / 1000) };
}

// --- load -------------------------------------------------------------------------------------------

/** Keep-alive HTTP/1.1 client (node:http: far less client CPU per request than fetch). */
class Client {
	constructor(base, connections) {
		const u = new URL(base);
		this.host = u.hostname;
		this.port = Number(u.port);
		this.agent = new http.Agent({ keepAlive: true, maxSockets: connections });
	}

	send({ method = "GET", path, headers = {}, body }, { keepBody = true } = {}) {
		return new Promise((resolve, reject) => {
			const req = http.request(
				{
					agent: this.agent,
					host: this.host,
					port: this.port,
					method,
					path,
					headers: body === undefined ? headers : { ...headers, "content-length": Buffer.byteLength(body) },
				},
				(res) => {
					const chunks = [];
					res.on("data", (c) => keepBody && chunks.push(c));
					res.on("end", () => resolve({ status: res.statusCode, body: keepBody ? Buffer.concat(chunks).toString() : "" }));
					res.on("error", reject);
				},
			);
			req.on("error", reject);
			req.end(body);
		});
	}

	close() {
		this.agent.destroy();
	}
}

/** One request of the target (or one per client: `prime`), checked: its status, and the list's row count. */
async function checkTarget(tg) {
	const client = new Client(tg.at.url, 1);
	let res;
	for (let i = 0; i < (tg.prime ?? 1); i++) {
		res = await client.send(tg.make());
		if (res.status !== (tg.expect ?? 200)) break;
	}
	client.close();
	if (res.status !== (tg.expect ?? 200)) throw new Error(`${tg.label}: answered ${res.status}: ${res.body.slice(0, 500)}`);
	if (tg.check !== undefined && JSON.parse(res.body).data.length !== tg.check) throw new Error(`${tg.label}: expected ${tg.check} rows: ${res.body.slice(0, 300)}`);
}

/** Closed-loop load for `seconds` after a warm-up; rps, latency percentiles and workerd CPU per request. */
async function measure(tg, { seconds, concurrency, warmupMs }) {
	const client = new Client(tg.at.url, concurrency);
	const expect = tg.expect ?? 200;
	const make = INNER ? () => { const r = tg.make(); return { ...r, headers: { ...r.headers, "x-inner": String(INNER) } }; } : tg.make;
	const loop = async (until, onDone) => {
		await Promise.all(
			Array.from({ length: concurrency }, async () => {
				while (performance.now() < until) {
					const t0 = performance.now();
					const res = await client.send(make(), { keepBody: false });
					onDone(performance.now() - t0, res.status);
				}
			}),
		);
	};
	await loop(performance.now() + warmupMs, () => {});
	const lat = [];
	const statuses = {};
	let errors = 0;
	const cpu0 = cpuUs(tg.at.pid);
	const started = performance.now();
	await loop(started + seconds * 1000, (ms, status) => {
		lat.push(ms);
		statuses[status] = (statuses[status] ?? 0) + 1;
		if (status !== expect) errors++;
	});
	const elapsed = (performance.now() - started) / 1000;
	const cpu1 = cpuUs(tg.at.pid);
	client.close();
	lat.sort((a, b) => a - b);
	const pct = (p) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))];
	const n = INNER || 1;
	return { rps: Math.round((lat.length * n) / elapsed), p50: pct(0.5), p99: pct(0.99), cpuUs: (cpu1 - cpu0) / (lat.length * n), errors, statuses };
}

/**
 * --profile <key>: the target's load for `seconds` under V8's sampling profiler (the Worker's isolate,
 * its Durable Objects included: workerd runs them in the same isolate), after a warm-up. Writes
 * bench/.out/<key>.cpuprofile (open it in Chrome DevTools) and prints the functions with the most
 * self time, and the project's own functions by total time.
 */
async function profile(instance, tg, { seconds, concurrency }) {
	if (!globalThis.WebSocket) throw new Error("--profile needs Node's WebSocket: run with NODE_OPTIONS=--experimental-websocket (Node 20)");
	await measure(tg, { seconds: 2, concurrency, warmupMs: 1000 });
	const base = await instance.mf.getInspectorURL();
	const ws = new WebSocket(`${base.origin}/core:user:${instance.name}`);
	await new Promise((resolve, reject) => {
		ws.onopen = resolve;
		ws.onerror = reject;
	});
	let id = 0;
	const pending = new Map();
	ws.onmessage = (e) => {
		const msg = JSON.parse(e.data);
		if (msg.id && pending.has(msg.id)) pending.get(msg.id)(msg);
	};
	const call = (method, params = {}) =>
		new Promise((resolve) => {
			pending.set(++id, resolve);
			ws.send(JSON.stringify({ id, method, params }));
		});
	await call("Profiler.enable");
	await call("Profiler.setSamplingInterval", { interval: 100 });
	await call("Profiler.start");
	const m = await measure(tg, { seconds, concurrency, warmupMs: 0 });
	const { result } = await call("Profiler.stop");
	ws.close();
	const file = join(OUT, `${tg.key}.cpuprofile`);
	writeFileSync(file, JSON.stringify(result.profile));
	console.log(`\n${tg.label}: ${m.rps} req/s, ${Math.round(m.cpuUs)} us CPU/req while profiled; profile in ${file}`);

	const { nodes, samples, timeDeltas } = result.profile;
	const byId = new Map(nodes.map((n) => [n.id, n]));
	const parent = new Map();
	for (const n of nodes) for (const c of n.children ?? []) parent.set(c, n.id);
	const selfUs = new Map();
	samples.forEach((s, i) => selfUs.set(s, (selfUs.get(s) ?? 0) + (timeDeltas[i] ?? 0)));
	const label = (n) => {
		const f = n.callFrame;
		const file = f.url.split("/").pop() || "";
		return `${f.functionName || "(anonymous)"} ${file}:${f.lineNumber + 1}`;
	};
	const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
	const idle = [...selfUs].filter(([nid]) => ["(idle)", "(program)"].includes(byId.get(nid).callFrame.functionName)).reduce((a, [, us]) => a + us, 0);
	const busy = total - idle;
	const self = new Map();
	const inclusive = new Map();
	for (const [nid, us] of selfUs) {
		const n = byId.get(nid);
		if (["(idle)", "(program)"].includes(n.callFrame.functionName)) continue;
		self.set(label(n), (self.get(label(n)) ?? 0) + us);
		const seen = new Set();
		for (let cur = nid; cur !== undefined; cur = parent.get(cur)) {
			const l = label(byId.get(cur));
			if (seen.has(l)) continue;
			seen.add(l);
			inclusive.set(l, (inclusive.get(l) ?? 0) + us);
		}
	}
	const requests = m.rps * seconds;
	const show = (title, map, n) => {
		console.log(`\n${title} (share of the isolate's busy time; us per request)`);
		for (const [l, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, n))
			console.log(`  ${((us / busy) * 100).toFixed(1).padStart(5)}%  ${(us / requests).toFixed(1).padStart(7)}  ${l}`);
	};
	console.log(`isolate busy ${(busy / requests).toFixed(0)} us per request (JavaScript and what it calls; the rest of workerd's CPU is outside V8)`);
	show("self time", self, 30);
	show("total time", inclusive, 60);
}

const median = (xs) => {
	const s = [...xs].sort((a, b) => a - b);
	return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
