// `npm run bench -- scale`: what a request costs as a tenant's data grows, and how many tenant stores one
// deployment holds (issue 19). Not in CI; about 6-10 minutes on a 2-core machine.
//
// Serves bench/scale-worker.ts (the production Worker plus bench-only seeding and counting, see that file)
// with Miniflare, seeds rows straight into the stores' SQLite and into D1, then prints, as its last lines:
//   scale route=<name> size=<rows> rows_read=<n>       one list page, at 1,000 / 10,000 / 100,000 rows: the
//                                                      most of page 1, page 2 and a page from a cursor in the
//                                                      middle of the list, over the route's filters
//   scale route=audit_verify size=1000000 queries=<n>  SQL statements of one verify call on a 1,000,000-entry chain
//   scale tenants=10000 seconds=<s> bytes_per_tenant=<n> cross_tenant_rows=0
//   scale tenant_rps=<n>                               one tenant's GET products per second into its store
// Store routes count the rows read through the store's SQLite by that request (SqlD1's counters, returned
// by the bench entry as x-bench-rows-read); directory routes (members, events) count D1's meta.rows_read of
// every statement the request ran (x-bench-d1-rows-read).
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from "jose";
import { Log, LogLevel, Miniflare } from "miniflare";
import { applyD1Migrations, ROOT } from "../scripts/lib.mjs";

const OUT = join(ROOT, "bench", ".out", "scale");
const ISSUER = "https://clerk.bench.local";
const PAGE = 20;
const BOUND = PAGE + 2;
const ORG = "org_bench";
const CHAIN_ORG = "org_chain";

function build() {
	// wrangler.toml's [assets] directory is generated (npm install's prepare); a fresh worktree may lack it.
	execFileSync(process.execPath, [join(ROOT, "scripts", "vendor-docs.mjs")], { cwd: ROOT, stdio: "inherit" });
	execFileSync(join(ROOT, "node_modules", ".bin", "wrangler"), ["deploy", "bench/scale-worker.ts", "--dry-run", "--outdir", OUT], {
		cwd: ROOT,
		stdio: ["ignore", "ignore", "inherit"],
		env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" },
	});
}

const cursorOf = (k, id) => Buffer.from(JSON.stringify([k, id])).toString("base64url");
const pad8 = (i) => String(i).padStart(8, "0");
const log = (...a) => console.log(...a);

export async function scale(args) {
	const sizes = String(args.sizes ?? "1000,10000,100000")
		.split(",")
		.map(Number);
	const TENANTS = Number(args.tenants ?? 10_000);
	const CHAIN = Number(args.chain ?? 1_000_000);
	const RPS_SECONDS = Number(args.seconds ?? 5);
	const CONCURRENCY = Number(args.concurrency ?? 32);
	/** --only lists,rps,verify,tenants runs some phases (a partial run prints partial lines). */
	const want = (phase) => !args.only || String(args.only).split(",").includes(phase);
	const started = performance.now();
	const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`;

	build();
	const keys = await generateKeyPair("RS256", { extractable: true });
	const kid = (await exportJWK(keys.publicKey)).n.slice(0, 8);
	// Storage (every store's SQLite, D1) on tmpfs when there is one: on this kind of machine the disk's
	// flushes, not the Worker, would set the pace (a store's first write: ~40 ms on disk, ~3 ms on tmpfs).
	const persist = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "edge-bench-scale-"));
	const cleanup = () => rmSync(persist, { recursive: true, force: true });
	process.once("exit", cleanup);
	const config = {
		...(args.verbose ? { log: new Log(LogLevel.DEBUG) } : {}),
		durableObjectsPersist: join(persist, "do"),
		d1Persist: join(persist, "d1"),
		workers: [
			{
				name: "main",
				modules: true,
				scriptPath: join(OUT, "scale-worker.js"),
				compatibilityDate: "2026-04-20",
				compatibilityFlags: ["nodejs_compat"],
				d1Databases: { DB: "bench-scale" },
				queueProducers: { WEBHOOK_QUEUE: { queueName: "webhook-events" }, TENANT_EVENTS: { queueName: "tenant-events" } },
				queueConsumers: {
					"webhook-events": { maxBatchSize: 50, maxBatchTimeout: 1, maxRetries: 5, deadLetterQueue: "webhook-events-dlq" },
					"tenant-events": { maxBatchSize: 50, maxBatchTimeout: 1, maxRetries: 10, deadLetterQueue: "tenant-events-dlq" },
				},
				durableObjects: {
					RATE_LIMITER: { className: "RateLimiter", useSQLite: true },
					USAGE: { className: "UsageCounter", useSQLite: true },
					// The production class plus bench-only seeding RPCs (bench/scale-worker.ts).
					TENANT_STORE: { className: "BenchTenantStore", useSQLite: true },
				},
				bindings: {
					CLERK_ISSUER: ISSUER,
					CLERK_JWT_KEY: await exportSPKI(keys.publicKey),
					CLERK_WEBHOOK_SECRET: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
					LOG_LEVEL: "error",
					RATE_LIMIT_MODE: "off",
				},
			},
		],
	};
	// One workerd at a time; the tenants phase restarts it (same storage) every few thousand stores.
	let mf;
	let url;
	const start = async () => {
		mf = new Miniflare(config);
		url = (await mf.ready).toString().replace(/\/$/, "");
	};
	await start();
	process.once("SIGINT", () => {
		cleanup();
		process.exit(130);
	});
	try {
		await phases();
	} finally {
		await mf.dispose();
		cleanup();
	}

	async function phases() {
		const db = await mf.getD1Database("DB");
		await applyD1Migrations(db);

		const benchCall = async (path, body) => {
			const res = await mf.dispatchFetch(`${url}/__bench/${path}`, { method: "POST", body: JSON.stringify(body) });
			const text = await res.text();
			if (!res.ok) throw new Error(`/__bench/${path}: ${res.status} ${text.slice(0, 500)}`);
			return JSON.parse(text);
		};

		const base = Date.UTC(2026, 0, 1);
		const now = Date.now();
		await db
			.prepare("INSERT INTO users (id, email, source_updated_at, created_at, updated_at) VALUES ('user_bench', 'b@bench.local', 1, ?, ?)")
			.bind(now, now)
			.run();
		for (const id of [ORG, CHAIN_ORG]) {
			await db.batch([
				db
					.prepare(
						"INSERT INTO organizations (id, name, slug, plan, source_updated_at, created_at, updated_at, rate_limit_per_minute, user_rate_limit_per_minute, monthly_quota, seat_limit) VALUES (?, 'Bench', ?, 'enterprise', 1, ?, ?, 1000000000, 1000000000, 1000000000000, 1000000000)",
					)
					.bind(id, id, now, now),
				db
					.prepare(
						"INSERT INTO memberships (id, organization_id, user_id, role, source_updated_at, created_at, updated_at, user_email) VALUES (?, ?, 'user_bench', 'org:admin', 1, ?, ?, 'b@bench.local')",
					)
					.bind(`orgmem_${id}`, id, base - 1, base - 1),
			]);
		}

		const tokens = new Map();
		const token = async (orgId) => {
			if (tokens.has(orgId)) return tokens.get(orgId);
			const t = Math.floor(Date.now() / 1000);
			const jwt = await new SignJWT({ v: 2, sid: "sess_bench", fea: "o:members", o: { id: orgId, slg: orgId, rol: "admin", per: "read", fpm: "1" } })
				.setProtectedHeader({ alg: "RS256", kid })
				.setIssuer(ISSUER)
				.setSubject("user_bench")
				.setIssuedAt(t)
				.setExpirationTime(t + 7200)
				.sign(keys.privateKey);
			tokens.set(orgId, jwt);
			return jwt;
		};

		/** One GET as user_bench; the body and the rows it read (the store's or D1's figure). Anything but 200 fails the run. */
		async function get(path, orgId, directory = false) {
			const headers = { authorization: `Bearer ${await token(orgId)}`, ...(directory ? { "x-bench-d1": "1" } : {}) };
			const res = await mf.dispatchFetch(`${url}${path}`, { headers });
			const text = await res.text();
			if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${text.slice(0, 300)}`);
			return {
				body: JSON.parse(text),
				rows: Number(res.headers.get(directory ? "x-bench-d1-rows-read" : "x-bench-rows-read")),
				total: Number(res.headers.get("x-bench-rows-read-total") ?? Number.NaN),
				queries: Number(res.headers.get("x-bench-queries") ?? 0),
				detail: directory ? JSON.parse(res.headers.get("x-bench-d1-detail") ?? "[]") : undefined,
			};
		}

		// --- list routes: one tenant, grown to each size ---------------------------------------------------

		const q = (params) => {
			const s = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined)).toString();
			return s ? `?${s}` : "";
		};
		/** The row near the middle of a list of `size` (index size/2 or the next that passes `keep`). */
		const middle = (size, keep = () => true) => {
			let i = Math.floor(size / 2);
			while (!keep(i)) i++;
			return i;
		};
		// Seeded row i (bench/scale-worker.ts): created_at advances every 10 rows (ties on the sort key), ids in order.
		const createdAt = (i) => base + Math.floor(i / 10);
		const at = (prefix, key) => (i) => cursorOf(key(i), `${prefix}${pad8(i)}`);
		const byTime = (prefix) => at(prefix, createdAt);
		const bySeq = (prefix) => at(prefix, (i) => i);

		/**
		 * The routes and their variants (filters). `deep(size)` is the cursor of a row in the middle of the
		 * variant's list; page 2 follows page 1's nextCursor. The route's figure is the most any counted variant
		 * read. `excluded` variants are printed, not counted, with the reason.
		 */
		const routes = [
			{
				name: "products",
				path: `/api/orgs/${ORG}/products`,
				variants: [
					{ label: "all", deep: (n) => byTime("prd_s")(middle(n)) },
					{ label: "status=active", params: { status: "active" }, deep: (n) => byTime("prd_s")(middle(n, (i) => i % 4 !== 0)) },
					{ label: "categoryId=cat_s3", params: { categoryId: "cat_s3" }, deep: (n) => byTime("prd_s")(middle(n, (i) => i % 5 === 3)) },
					{ label: "sku (one row)", params: { sku: "SKU-00000500" } },
				],
			},
			{
				name: "orders",
				path: `/api/orgs/${ORG}/orders`,
				variants: [
					{ label: "all", deep: (n) => byTime("ord_s")(middle(n)) },
					{ label: "status=paid", params: { status: "paid" }, deep: (n) => byTime("ord_s")(middle(n, (i) => i % 4 === 1)) },
				],
			},
			{
				name: "audit",
				path: `/api/orgs/${ORG}/audit-logs`,
				variants: [
					{ label: "all", deep: (n) => bySeq("log_s")(middle(n)) },
					{ label: "action=order.created", params: { action: "order.created" }, deep: (n) => bySeq("log_s")(middle(n, (i) => i % 4 === 2)) },
					{ label: "actor=user_a3 (1 in 10)", params: { actor: "user_a3" }, deep: (n) => bySeq("log_s")(middle(n, (i) => i % 10 === 3)) },
					{
						label: "from= (newest 3/4)",
						params: (n) => ({ from: String(createdAt(Math.floor(n / 4))) }),
						deep: (n) => bySeq("log_s")(middle(n)),
						excluded:
							"a time window is a range on occurred_at, not on the seq order: page 1 reads the window through the time index and sorts it (cursor pages walk seq)",
					},
				],
			},
			{
				name: "deliveries",
				path: `/api/orgs/${ORG}/webhooks/whe_bench/deliveries`,
				over: "page 1 checks the endpoint inside its query (404 for an unknown endpoint): one row more than the page",
				variants: [{ label: "all", deep: (n) => byTime("dlv_s")(middle(n)) }],
			},
			{
				name: "members",
				directory: true,
				path: `/api/orgs/${ORG}/members`,
				over: "the list reads memberships alone (each carries its user's email and names)",
				variants: [{ label: "all", deep: (n) => byTime("orgmem_m")(middle(n)) }],
			},
			{
				name: "events",
				directory: true,
				path: `/api/orgs/${ORG}/events`,
				variants: [
					{ label: "all", deep: (n) => byTime("msg_s")(middle(n)) },
					{ label: "type=user.updated", params: { type: "user.updated" }, deep: (n) => byTime("msg_s")(middle(n, (i) => i % 3 === 1)) },
				],
			},
			{
				name: "search",
				path: `/api/orgs/${ORG}/products`,
				over: "each hit is one row of the trigram index, whose content is the product (store schema v3)",
				// A search page follows the trigram index's rowid (= the seeded product's number).
				variants: [
					{ label: "q=amber (1 in 10)", params: { q: "amber" }, deep: (n) => bySeq("prd_s")(middle(n, (i) => i % 10 === 0)) },
					{ label: "q=Product 4", params: { q: "Product 4" }, deep: (n) => bySeq("prd_s")(Math.floor(n * 0.45)) },
					{
						label: "q=mb (2 characters)",
						params: { q: "mb" },
						deep: (n) => byTime("prd_s")(middle(n, (i) => i % 10 === 0)),
						excluded: "1-2 characters cannot use the trigram index: a LIKE over the list, page / selectivity rows",
					},
				],
			},
		];

		async function measure(route, size) {
			let worst = 0;
			for (const v of route.variants) {
				const p = { ...(typeof v.params === "function" ? v.params(size) : (v.params ?? {})), limit: PAGE };
				await get(`${route.path}${q(p)}`, ORG, route.directory); // warm-up: the directory lookups' caches
				const first = await get(`${route.path}${q(p)}`, ORG, route.directory);
				const figures = [`page1 ${first.rows}`];
				let max = first.rows;
				if (first.body.nextCursor) {
					const second = await get(`${route.path}${q({ ...p, cursor: first.body.nextCursor })}`, ORG, route.directory);
					figures.push(`page2 ${second.rows}`);
					max = Math.max(max, second.rows);
				}
				if (v.deep) {
					const deep = await get(`${route.path}${q({ ...p, cursor: v.deep(size) })}`, ORG, route.directory);
					if (deep.body.data.length === 0) throw new Error(`${route.name} ${v.label}: the middle page is empty`);
					figures.push(`middle ${deep.rows}${route.directory ? "" : ` (${deep.total} with the object's own lookups)`}`);
					max = Math.max(max, deep.rows);
					if (route.directory && deep.rows > BOUND) log(`    statements: ${JSON.stringify(deep.detail)}`);
				}
				log(`  ${route.name.padEnd(10)} ${String(size).padStart(6)}  ${v.label.padEnd(24)} ${figures.join(", ")}${v.excluded ? `  (not counted: ${v.excluded})` : ""}`);
				if (!v.excluded) worst = Math.max(worst, max);
			}
			return worst;
		}

		const results = [];
		/** D1 bytes added per directory row kind: [bytes, rows] pairs. */
		const directory = { member: [], event: [], org: [], usage: [] };
		const perRow = (pairs) => Math.round(pairs.reduce((a, [b]) => a + b, 0) / Math.max(1, pairs.reduce((a, [, n]) => a + n, 0)));
		let have = 0;
		for (const size of want("lists") ? sizes : []) {
			const t0 = performance.now();
			for (let from = have + 1; from <= size; from += 50_000) {
				const count = Math.min(50_000, size - from + 1);
				for (const kind of ["products", "orders", "deliveries", "audit"]) await benchCall("seed", { kind, orgId: ORG, from, count, now: base });
				const d0 = (await benchCall("d1size", {})).bytes;
				await benchCall("members", { orgId: ORG, from, count, now: base });
				const d1 = (await benchCall("d1size", {})).bytes;
				await benchCall("events", { orgId: ORG, from, count, now: base });
				const d2 = (await benchCall("d1size", {})).bytes;
				directory.member.push([d1 - d0, count]);
				directory.event.push([d2 - d1, count]);
			}
			have = size;
			log(`\n# ${size} rows per list: seeded in ${((performance.now() - t0) / 1000).toFixed(1)} s (${elapsed()} in all); rows read per page (limit ${PAGE}):`);
			for (const route of routes) results.push({ route, size, rows: await measure(route, size) });
		}
		// --- one tenant's requests per second into its store ------------------------------------------------

		let tenantRps = 0;
		if (want("rps")) {
			log(`\n# tenant_rps: GET /api/orgs/${ORG}/products?limit=${PAGE} through the Worker into the store, concurrency ${CONCURRENCY}, ${RPS_SECONDS} s after 1 s of warm-up`);
			const auth = { authorization: `Bearer ${await token(ORG)}` };
			const load = async (target, headers, seconds) => {
				let ok = 0;
				let errors = 0;
				const end = performance.now() + seconds * 1000;
				const t = performance.now();
				await Promise.all(
					Array.from({ length: CONCURRENCY }, async () => {
						while (performance.now() < end) {
							try {
								const res = await fetch(target, { headers });
								await res.arrayBuffer();
								if (res.status === 200) ok++;
								else errors++;
							} catch {
								errors++;
							}
						}
					}),
				);
				return { rps: Math.round(ok / ((performance.now() - t) / 1000)), errors };
			};
			const productsUrl = `${url}/api/orgs/${ORG}/products?limit=${PAGE}`;
			await load(productsUrl, auth, 1);
			const r = await load(productsUrl, auth, RPS_SECONDS);
			const health = await load(`${url}/api/health`, {}, 2);
			tenantRps = r.rps;
			log(`  ${r.rps} req/s (${r.errors} errors); for scale, GET /api/health on this machine now: ${health.rps} req/s`);
		}

		// --- audit verification on a 1,000,000-entry chain ---------------------------------------------------

		let verifyQueries = 0;
		if (want("verify")) {
			log(`\n# audit_verify: a ${CHAIN}-entry chain in one store`);
			const c0 = performance.now();
			for (let from = 1; from <= CHAIN; from += 50_000) {
				await benchCall("seed", { kind: "audit", orgId: CHAIN_ORG, from, count: Math.min(50_000, CHAIN - from + 1), now: base });
			}
			log(`  seeded in ${((performance.now() - c0) / 1000).toFixed(1)} s (${elapsed()} in all)`);
			const verify = `/api/orgs/${CHAIN_ORG}/audit-logs/verify`;
			/** The entry with this seq, from the audit list (the API's own answer): a verify cursor is (seq, hash). */
			const entry = async (seq) =>
				(await get(`/api/orgs/${CHAIN_ORG}/audit-logs?limit=1&cursor=${cursorOf(seq + 1, `log_s${pad8(seq + 1)}`)}`, CHAIN_ORG)).body.data[0];
			const from = async (seq) => {
				const e = await entry(seq);
				return `${verify}?cursor=${cursorOf(e.seq, e.hash)}`;
			};
			const calls = [];
			const first = await get(verify, CHAIN_ORG);
			calls.push({ label: "first call (from genesis)", ...first });
			// A short chain (--chain below one call's bound) is verified by the first call: no nextCursor to follow.
			if (first.body.nextCursor) calls.push({ label: "its nextCursor", ...(await get(`${verify}?cursor=${encodeURIComponent(first.body.nextCursor)}`, CHAIN_ORG)) });
			calls.push({ label: "from the checkpoint", ...(await get(verify, CHAIN_ORG)) });
			calls.push({ label: `from seq ${CHAIN / 2} (cursor)`, ...(await get(await from(CHAIN / 2), CHAIN_ORG)) });
			const last = await get(await from(CHAIN - 500), CHAIN_ORG);
			calls.push({ label: `from seq ${CHAIN - 500} to the head`, ...last });
			for (const c of calls) {
				log(
					`  ${c.label.padEnd(32)} intact ${c.body.intact}, entries ${c.body.entries}, checkedThrough ${c.body.checkedThrough} of ${c.body.headSeq}, queries ${c.queries}, rows read ${c.rows}`,
				);
				if (!c.body.intact) throw new Error(`audit verify: the seeded chain does not verify (${JSON.stringify(c.body)})`);
			}
			if (last.body.nextCursor !== null || last.body.checkedThrough !== CHAIN) throw new Error("audit verify did not reach the head");
			verifyQueries = Math.max(...calls.map((c) => c.queries));
		}

		// --- 10,000 tenant stores --------------------------------------------------------------------------

		const PER_REQUEST = Number(args["per-request"] ?? 250);
		const PARALLEL_REQUESTS = Number(args["parallel-requests"] ?? 2);
		const IN_FLIGHT = Number(args["in-flight"] ?? 25);
		// Local workerd keeps every store it opened, and past about a thousand open SQLite databases in one
		// process SQLite runs out of memory (SQLITE_NOMEM): the phase restarts workerd (same storage) between batches.
		const PER_PROCESS = Number(args["per-process"] ?? 500);
		const tenants = { seconds: 0, bytes: 0, foreign: 0, wrongOwner: 0, complete: 0, seen: 0, created: 0 };
		if (want("tenants")) {
			log(
				`\n# tenants: ${TENANTS} tenant stores, each created with a product and an order through the store's routes (${PER_REQUEST} stores per request, ${PARALLEL_REQUESTS} requests at once, ${IN_FLIGHT} store calls in flight per request; workerd restarted every ${PER_PROCESS})`,
			);
			const o0 = (await benchCall("d1size", {})).bytes;
			for (let from = 1; from <= TENANTS; from += 5_000) {
				await benchCall("orgs", { prefix: "org_t", from, count: Math.min(5_000, TENANTS - from + 1), now });
			}
			const o1 = (await benchCall("d1size", {})).bytes;
			directory.org.push([o1 - o0, TENANTS]);
			// A year of daily usage rows for 100 of them.
			await benchCall("usage", { prefix: "org_t", from: 1, count: Math.min(100, TENANTS), days: 365 });
			directory.usage.push([(await benchCall("d1size", {})).bytes - o1, Math.min(100, TENANTS) * 365]);
			const ids = Array.from({ length: TENANTS }, (_, i) => `org_t${String(i + 1).padStart(5, "0")}`);
			const fanOut = async (route, list, each) => {
				const chunks = [];
				for (let i = 0; i < list.length; i += PER_REQUEST) chunks.push(list.slice(i, i + PER_REQUEST));
				let next = 0;
				await Promise.all(
					Array.from({ length: PARALLEL_REQUESTS }, async () => {
						while (next < chunks.length) each(await benchCall(route, { orgIds: chunks[next++], concurrency: IN_FLIGHT }));
					}),
				);
			};
			const t0 = performance.now();
			for (let b = 0; b < ids.length; b += PER_PROCESS) {
				const batch = ids.slice(b, b + PER_PROCESS);
				if (b > 0) {
					await mf.dispose();
					await start();
				}
				const c0 = performance.now();
				await fanOut("tenants", batch, (r) => {
					tenants.created += r.created;
					if (r.failures.length > 0) throw new Error(`tenant creation failed: ${r.failures.slice(0, 3).join("; ")}`);
				});
				tenants.seconds += (performance.now() - c0) / 1000;
				await fanOut("check", batch, (r) => {
					tenants.bytes += r.bytes;
					tenants.foreign += r.foreignRows;
					tenants.wrongOwner += r.wrongOwner;
					tenants.complete += r.withProductAndOrder;
				});
				// Through the Worker as a client: a few tenants' lists hold only their own product and order.
				for (const id of batch.filter((_, i) => i % 100 === 0)) {
					for (const path of ["products", "orders"]) {
						const { body } = await get(`/api/orgs/${id}/${path}`, id);
						tenants.seen += body.data.length;
						if (path === "products") tenants.foreign += body.data.filter((x) => !x.name.startsWith(`${id} `)).length;
						if (body.data.length !== 1) tenants.foreign += Math.abs(body.data.length - 1);
					}
				}
				log(`  ${b + batch.length} stores: ${tenants.created} created in ${tenants.seconds.toFixed(1)} s of creation (${elapsed()} in all)`);
			}
			log(
				`  ${tenants.created} created in ${tenants.seconds.toFixed(1)} s (${Math.round(tenants.created / tenants.seconds)} stores/s; ${((performance.now() - t0) / 1000).toFixed(1)} s with checks and restarts); ${tenants.complete} hold exactly 1 product and 1 order; ${tenants.wrongOwner} bound to another organization; ${tenants.foreign} rows of another organization (${tenants.seen} rows read back through the API)`,
			);
		}

		log(
			`\n# directory (D1) bytes per row, indexes included: organization with its admin membership ${perRow(directory.org)}, member (user + membership) ${perRow(directory.member)}, webhook event (kept 7 days) ${perRow(directory.event)}, daily usage row ${perRow(directory.usage)}`,
		);
		log(`\n# done in ${elapsed()}; page size ${PAGE}, so one page reads ${PAGE + 1} rows (one more tells if more remain), ${BOUND} with the cursor's row`);
		for (const route of routes) {
			const over = results.filter((r) => r.route === route && r.rows > BOUND);
			if (over.length > 0) log(`  ${route.name}: ${over.map((r) => r.rows).join(" / ")} rows at ${over.map((r) => r.size).join(" / ")} (> ${BOUND}): ${route.over ?? "?"}`);
		}
		log("");
		for (const r of results) log(`scale route=${r.route.name} size=${r.size} rows_read=${r.rows}`);
		if (want("verify")) log(`scale route=audit_verify size=${CHAIN} queries=${verifyQueries}`);
		if (want("tenants")) {
			log(
				`scale tenants=${TENANTS} seconds=${tenants.seconds.toFixed(1)} bytes_per_tenant=${Math.round(tenants.bytes / TENANTS)} cross_tenant_rows=${tenants.foreign + tenants.wrongOwner}`,
			);
		}
		if (want("rps")) log(`scale tenant_rps=${tenantRps}`);
		if (tenants.foreign + tenants.wrongOwner > 0 || (want("tenants") && tenants.complete !== TENANTS)) process.exitCode = 1;
	}
}
