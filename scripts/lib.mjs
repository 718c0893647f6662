// Shared helpers for the local development scripts (Node, not the Worker).
import { cpSync, existsSync, readdirSync, readFileSync, symlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const DEV_VARS = join(ROOT, ".dev.vars");
export const DEV_KEY = join(ROOT, ".dev-jwt-key.json");
/** Written by `npm run dev` once the server answers: {url, port, persistTo, pid, fakeProviders: {url, providers} or null} (git-ignored, under .wrangler/). */
export const DEV_SERVER_FILE = join(ROOT, ".wrangler", "dev-server.json");
export const DEFAULT_URL = "http://localhost:8787";

/**
 * Applies migrations/*.sql in order to a D1 database a script serves itself (Miniflare's getD1Database),
 * each file as one batch of its drizzle-kit statements.
 */
export async function applyD1Migrations(db) {
	for (const file of readdirSync(join(ROOT, "migrations"))
		.filter((f) => f.endsWith(".sql"))
		.sort()) {
		const stmts = readFileSync(join(ROOT, "migrations", file), "utf8")
			.split("--> statement-breakpoint")
			.map((s) => s.replace(/^\s*--.*$/gm, "").trim())
			.filter(Boolean);
		await db.batch(stmts.map((s) => db.prepare(s)));
	}
}

/** Minimal dotenv reader for .dev.vars (KEY=value, optional quotes, # comments). */
export function readDevVars() {
	if (!existsSync(DEV_VARS)) return {};
	const out = {};
	for (const line of readFileSync(DEV_VARS, "utf8").split(/\r?\n/)) {
		const m = /^\s*([A-Z0-9_]+)\s*=\s*(.*)\s*$/.exec(line);
		if (!m) continue;
		let v = m[2];
		if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
		out[m[1]] = v;
	}
	return out;
}

export function parseArgs(argv) {
	const args = { _: [] };
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		if (a === "-h") {
			args.help = true;
			continue;
		}
		if (!a.startsWith("--")) {
			args._.push(a);
			continue;
		}
		const [k, inline] = a.slice(2).split("=", 2);
		if (inline !== undefined) args[k] = inline;
		else if (i + 1 < argv.length && !argv[i + 1].startsWith("--")) args[k] = argv[++i];
		else args[k] = true;
	}
	return args;
}

/**
 * Copies what a fresh clone has (sources, scripts, migrations, configs, README) into `dir` and links node_modules,
 * with no .dev.vars, .env or .wrangler state: for checks that need a fresh checkout (walkthrough, check-hermetic).
 */
export function copyProject(dir) {
	const entries = ["src", "scripts", "test", "migrations", "wrangler.toml", "package.json", "tsconfig.json"];
	for (const entry of [...entries, "worker-configuration.d.ts", "README.md", "public"])
		if (existsSync(join(ROOT, entry))) cpSync(join(ROOT, entry), join(dir, entry), { recursive: true });
	symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"), "dir");
}

/**
 * The OpenAPI document the Worker serves (GET /api/openapi.json), from a local Worker started for it (wrangler's
 * unstable_dev: workerd, no network, no deploy; no .dev.vars needed, the document route answers whatever the
 * configuration). For scripts/openapi-dump.mjs and scripts/client-types.mjs.
 */
export async function servedOpenApiDocument() {
	const { unstable_dev } = await import("wrangler");
	const worker = await unstable_dev(join(ROOT, "src", "index.ts"), {
		config: join(ROOT, "wrangler.toml"),
		envFiles: [],
		logLevel: "warn",
		experimental: { disableExperimentalWarning: true, disableDevRegistry: true, testMode: true },
	});
	try {
		const res = await worker.fetch("/api/openapi.json");
		if (res.status !== 200) throw new Error(`GET /api/openapi.json answered ${res.status}: ${await res.text()}`);
		return await res.json();
	} finally {
		await worker.stop();
	}
}

/** Prints `text` and exits 0 when --help (or -h) was given. */
export function usage(args, text) {
	if (!args.help) return;
	console.log(text);
	process.exit(0);
}

/** What `npm run dev` wrote about the running server, or null (not started, or stopped). */
export function readDevServer() {
	if (!existsSync(DEV_SERVER_FILE)) return null;
	try {
		const info = JSON.parse(readFileSync(DEV_SERVER_FILE, "utf8"));
		return typeof info.url === "string" ? info : null;
	} catch {
		return null;
	}
}

/** The local D1 database id of the DB binding (wrangler uses preview_database_id locally when there is one). */
function localDatabaseId() {
	const toml = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
	const block = toml.split(/^\[\[/m).find((b) => b.startsWith("d1_databases]]") && /binding\s*=\s*"DB"/.test(b)) ?? "";
	const id = (key) => new RegExp(`^\\s*${key}\\s*=\\s*"([^"]+)"`, "m").exec(block)?.[1];
	return id("preview_database_id") ?? id("database_id");
}

/**
 * The dev server's local D1 database, read through Miniflare as `wrangler d1 execute --local` does (while
 * `wrangler dev` runs). `persistTo` is its state directory (default: from .wrangler/dev-server.json).
 * Call dispose() when done.
 */
export async function openLocalD1(persistTo = readDevServer()?.persistTo ?? join(ROOT, ".wrangler", "state")) {
	const { Miniflare } = await import("miniflare");
	const mf = new Miniflare({
		modules: true,
		script: "export default {}",
		d1Databases: { DB: localDatabaseId() },
		d1Persist: join(persistTo, "v3", "d1"),
	});
	return { db: await mf.getD1Database("DB"), dispose: () => mf.dispose() };
}

/**
 * Polls the events table (every incoming provider webhook, by its id: svix id, Stripe event id, Razorpay event
 * id) until the queue consumer has written an outcome other than `queued`. Returns {outcome, error}, or null when
 * `deadlineMs` passed first (`queued` is then the last outcome seen, or null if the row was not written yet);
 * a read refused while the dev server holds the file's write lock is tried again until then.
 */
export async function waitForEvent(db, id, deadlineMs) {
	for (;;) {
		let row;
		try {
			row = await db.prepare("SELECT outcome, error FROM events WHERE svix_id = ?").bind(id).first();
		} catch (err) {
			// This reader opens the dev server's SQLite file beside it: a read that meets the server's write
			// lock (SQLITE_BUSY, which Miniflare's D1 reports as an internal error) is tried again.
			if (Date.now() > deadlineMs) throw err;
		}
		if (row && row.outcome !== "queued") return row;
		if (Date.now() > deadlineMs) return null;
		await new Promise((r) => setTimeout(r, 250));
	}
}

/** Base URL of the Worker: --url, else the running `npm run dev` server, else http://localhost:8787. */
export function baseUrl(args) {
	const url = typeof args.url === "string" ? args.url : (readDevServer()?.url ?? DEFAULT_URL);
	return url.replace(/\/+$/, "");
}

/** Permissions of the seeded system roles (see migrations/0001_seed_system_roles.sql). */
export const ROLE_PERMISSIONS = {
	"org:admin": [
		"org:sys_profile:manage",
		"org:sys_profile:delete",
		"org:sys_memberships:read",
		"org:sys_memberships:manage",
		"org:sys_domains:read",
		"org:sys_domains:manage",
		"org:members:read",
		"org:members:manage",
		"org:billing:read",
		"org:billing:manage",
		"org:products:read",
		"org:products:write",
		"org:orders:read",
		"org:orders:write",
		"org:audit:read",
		"org:usage:read",
		"org:webhooks:manage",
	],
	"org:member": [
		"org:sys_memberships:read",
		"org:members:read",
		"org:billing:read",
		"org:products:read",
		"org:orders:read",
		"org:usage:read",
	],
};

/**
 * Environment for the wrangler processes: no telemetry, no Request.cf fetch (it needs the internet and warns
 * without it), and no ANSI colour unless the output is a terminal.
 */
export const env = {
	...process.env,
	WRANGLER_SEND_METRICS: "false",
	CLOUDFLARE_CF_FETCH_ENABLED: "false",
	...(process.stdout.isTTY ? {} : { NO_COLOR: "1", FORCE_COLOR: "0" }),
};
