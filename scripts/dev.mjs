#!/usr/bin/env node
// `npm run dev`: prepares local state and starts `wrangler dev` with local D1, Queues and Durable Objects.
//  1. writes .dev.vars on first run (a local signing key, issuer, webhook secret) unless it exists;
//  2. applies D1 migrations to the local database (prints the migrations table once);
//  3. seeds a demo organization (org_demo) with an admin (user_demo_admin) and a member (user_demo_member);
//  4. unless .dev.vars configures them, starts the fake Razorpay and Stripe (scripts/fake-providers.mjs, in this
//     process, on 8790 or the next free port) and points the Worker at it with keys it issues (wrangler --var);
//  5. runs `wrangler dev` on --port or the first free port from 8787 (other arguments are passed through);
//  6. once it answers, writes {url, port, persistTo, pid, fakeProviders} to .wrangler/dev-server.json (read by
//     `npm run token`, `npm run webhook:send` and `npm run -s dev:url`) and prints the misconfigured variables, if
//     any (the names GET /api/health/ready lists).
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { exportJWK, generateKeyPair } from "jose";
import { startFakeProvidersFrom } from "./fake-providers.mjs";
import { DEV_KEY, DEV_SERVER_FILE, DEV_VARS, env, parseArgs, ROOT, readDevVars, usage } from "./lib.mjs";

const HELP = `usage: npm run dev [-- options]
  Local service: writes .dev.vars on first run, migrates and seeds the local D1, starts wrangler dev.
  --port <n>          port to listen on (default: 8787, or the next free port after it)
  --persist-to <dir>  local state directory for D1, Queues, Durable Objects (default: .wrangler/state)
  --fake-providers    serve Razorpay and Stripe from the local fake even when .dev.vars has their keys
  --no-fake-providers never start the fake (the payment routes then need keys in .dev.vars)
  --help              this text
  Payment providers: a provider with no variable of its own in .dev.vars (RAZORPAY_* / STRIPE_*) is served by
  scripts/fake-providers.mjs on http://localhost:8790 (or the next free port), started here: the Worker gets
  RAZORPAY_API_BASE / STRIPE_API_BASE pointing at it and test keys it accepts (wrangler --var, .dev.vars is left
  as it is). \`npm run -s dev:url -- --fake-providers\` prints its URL; npm run fake-providers -- --help lists
  what it answers.
  The cron (lapsed plans, outbox re-send, tenant-store upgrade and rollout) does not fire by itself locally:
  \`curl "$(npm run -s dev:url)/__scheduled"\` runs it once (wrangler dev --test-scheduled, passed here).
  Any other option is passed to \`wrangler dev\` (e.g. --ip 0.0.0.0, --log-level debug).
  Once the server answers, its URL is written to .wrangler/dev-server.json: \`npm run token\` and
  \`npm run webhook:send\` use it (or --url), \`npm run -s dev:url\` prints it.`;

const OWN_FLAGS = new Set(["--fake-providers", "--no-fake-providers"]);
const args = parseArgs(process.argv.slice(2).filter((a) => !OWN_FLAGS.has(a)));
usage(args, HELP);
const ownFlags = new Set(process.argv.slice(2).filter((a) => OWN_FLAGS.has(a)));
/** What is passed on to wrangler dev: everything but this script's own flags. */
const passthrough = process.argv.slice(2).filter((a) => !OWN_FLAGS.has(a));

const wrangler = join(ROOT, "node_modules", ".bin", "wrangler");
const tty = Boolean(process.stdout.isTTY);

async function ensureDevVars() {
	const vars = readDevVars();
	const realClerk = vars.CLERK_JWKS_URL || vars.CLERK_JWT_KEY || vars.CLERK_PUBLISHABLE_KEY;
	const lines = [];
	if (!existsSync(DEV_VARS)) {
		lines.push("# Written by `npm run dev` for local use only. Never deploy these values.");
		lines.push("# To use a real Clerk instance set CLERK_JWKS_URL (or CLERK_JWT_KEY) and CLERK_ISSUER here;");
		lines.push("# the local development key below is then ignored.");
		lines.push("# Razorpay and Stripe: while no RAZORPAY_* / STRIPE_* variable is set here, npm run dev serves each from a");
		lines.push("# local fake (scripts/fake-providers.mjs) with keys it issues; set test-mode keys here to use the real one.");
	}
	if (!vars.CLERK_ISSUER && !vars.CLERK_PUBLISHABLE_KEY) lines.push("CLERK_ISSUER=https://clerk.dev.local");
	if (!vars.CLERK_WEBHOOK_SECRET && !vars.CLERK_WEBHOOK_SIGNING_SECRET)
		lines.push(`CLERK_WEBHOOK_SECRET=whsec_${randomBytes(24).toString("base64")}`);
	if (!vars.OPERATOR_USER_IDS) lines.push("OPERATOR_USER_IDS=user_demo_admin");
	if (!realClerk && (!vars.DEV_JWT_PUBLIC_JWK || !existsSync(DEV_KEY))) {
		const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
		const kid = `dev-${randomBytes(6).toString("hex")}`;
		const pub = { ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" };
		writeFileSync(DEV_KEY, JSON.stringify({ ...(await exportJWK(privateKey)), kid, alg: "RS256" }), { mode: 0o600 });
		lines.push(`DEV_JWT_PUBLIC_JWK=${JSON.stringify(pub)}`);
		console.log(`[dev] generated a local signing key (${kid}) for \`npm run token\``);
	}
	if (lines.length > 0) appendFileSync(DEV_VARS, `${lines.join("\n")}\n`);
}

/** The value of a passed-through option (`--name value` or `--name=value`). */
function option(name) {
	for (let i = 0; i < passthrough.length; i++) {
		if (passthrough[i] === `--${name}`) return passthrough[i + 1];
		if (passthrough[i].startsWith(`--${name}=`)) return passthrough[i].slice(name.length + 3);
	}
	return undefined;
}

function portFree(port) {
	return new Promise((done) => {
		const srv = createServer();
		srv.once("error", () => done(false));
		srv.listen({ port, exclusive: true }, () => srv.close(() => done(true)));
	});
}

async function freePort(from) {
	for (let port = from; port < from + 100; port++) if (await portFree(port)) return port;
	throw new Error(`no free port in ${from}..${from + 99}`);
}

const stripAnsi = (s) => s.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, ""); // eslint-disable-line no-control-regex

/** Runs a wrangler command quietly; its whole output is printed only when it fails. */
function wranglerQuiet(cmdArgs, what) {
	const r = spawnSync(wrangler, cmdArgs, { cwd: ROOT, encoding: "utf8", env: { ...env, CI: "true", NO_COLOR: "1", FORCE_COLOR: "0" } });
	const out = stripAnsi(`${r.stdout ?? ""}${r.stderr ?? ""}`);
	if (r.status !== 0) {
		process.stderr.write(out);
		console.error(`[dev] ${what} failed (wrangler ${cmdArgs.join(" ")})`);
		process.exit(r.status ?? 1);
	}
	return out;
}

/** The last table wrangler drew (after applying: every migration with its status), printed once. */
function printMigrations(out) {
	if (/No migrations to apply/.test(out)) {
		console.log("[dev] D1 (local): no migrations to apply, the database is up to date");
		return;
	}
	const lines = out.split("\n");
	const end = lines.findLastIndex((l) => l.startsWith("└"));
	let start = end;
	while (start > 0 && /^[┌│├└]/.test(lines[start - 1])) start--;
	console.log("[dev] D1 (local) migrations:");
	if (end >= 0) console.log(lines.slice(start, end + 1).join("\n"));
}

const persistTo = resolve(ROOT, option("persist-to") ?? join(".wrangler", "state"));
const port = Number(option("port") ?? (await freePort(8787)));
const ip = option("ip") ?? "localhost";
const url = `http://${ip === "0.0.0.0" || ip === "::" ? "localhost" : ip}:${port}`;
const persistArgs = option("persist-to") ? ["--persist-to", persistTo] : [];

await ensureDevVars();
printMigrations(wranglerQuiet(["d1", "migrations", "apply", "DB", "--local", ...persistArgs], "applying the D1 migrations"));
wranglerQuiet(["d1", "execute", "DB", "--local", ...persistArgs, "--file", join(ROOT, "scripts", "seed.sql")], "seeding");
console.log("[dev] local D1 seeded: org_demo, user_demo_admin (org:admin), user_demo_member (org:member)");

/**
 * The providers the fake serves: each one .dev.vars says nothing about (no RAZORPAY_* / STRIPE_* variable), all
 * with --fake-providers, none with --no-fake-providers.
 */
function fakedProviders() {
	if (ownFlags.has("--no-fake-providers")) return [];
	const vars = readDevVars();
	const configured = (prefix) => Object.entries(vars).some(([k, v]) => k.startsWith(prefix) && v.trim() !== "");
	return ["razorpay", "stripe"].filter((p) => ownFlags.has("--fake-providers") || !configured(`${p.toUpperCase()}_`));
}

const faked = fakedProviders();
/** wrangler dev --var NAME:value for the fake: its URL and the test keys it issues (they win over .dev.vars). */
const fakeVars = [];
let fake = null;
if (faked.length > 0) {
	// Its state (and the keys it issued) lives beside the local D1, so both survive a restart together.
	fake = await startFakeProvidersFrom(
		8790,
		{ serviceUrl: url, persistTo, stateFile: join(persistTo, "fake-providers.json"), issueKeys: true },
		[port], // wrangler dev binds `port` only later
	);
	const k = fake.keys;
	if (faked.includes("razorpay")) {
		fakeVars.push(`RAZORPAY_API_BASE:${fake.url}`, `RAZORPAY_KEY_ID:${k.razorpayKeyId}`);
		fakeVars.push(`RAZORPAY_KEY_SECRET:${k.razorpayKeySecret}`, `RAZORPAY_WEBHOOK_SECRET:${k.razorpayWebhookSecret}`);
	}
	if (faked.includes("stripe")) {
		fakeVars.push(`STRIPE_API_BASE:${fake.url}`, `STRIPE_SECRET_KEY:${k.stripeSecretKey}`);
		fakeVars.push(`STRIPE_WEBHOOK_SECRET:${k.stripeWebhookSecret}`);
	}
	const names = faked.map((p) => (p === "razorpay" ? "Razorpay" : "Stripe")).join(" and ");
	console.log(`[dev] fake ${names} on ${fake.url} (scripts/fake-providers.mjs; --no-fake-providers to turn it off)`);
}

const devArgs = ["dev", ...passthrough];
if (!option("port")) devArgs.push("--port", String(port));
if (!option("inspector-port")) devArgs.push("--inspector-port", String(await freePort(9229)));
// The cron (wrangler.toml [triggers]) never fires by itself locally: GET /__scheduled runs it once.
if (!passthrough.includes("--test-scheduled")) devArgs.push("--test-scheduled");
for (const v of fakeVars) devArgs.push("--var", v);
const child = spawn(wrangler, devArgs, {
	cwd: ROOT,
	stdio: ["inherit", "pipe", "pipe"],
	env: tty ? { ...env, FORCE_COLOR: process.env.FORCE_COLOR ?? "1" } : env,
});

// The Worker logs one JSON line per request (with its request id); wrangler's own access line would be a second.
const WRANGLER_ACCESS_LINE = /^\[wrangler:info\] (GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) \S+ \d{3}\b/;
function relay(stream, sink) {
	let pending = "";
	stream.setEncoding("utf8");
	stream.on("data", (chunk) => {
		pending += chunk;
		const lines = pending.split("\n");
		pending = lines.pop() ?? "";
		for (const line of lines) {
			const plain = stripAnsi(line);
			if (WRANGLER_ACCESS_LINE.test(plain)) continue;
			sink.write(`${tty ? line : plain}\n`);
		}
	});
	stream.on("end", () => pending && sink.write(tty ? pending : stripAnsi(pending)));
}
relay(child.stdout, process.stdout);
relay(child.stderr, process.stderr);

function removeServerFile() {
	try {
		if (JSON.parse(readFileSync(DEV_SERVER_FILE, "utf8")).pid === process.pid) rmSync(DEV_SERVER_FILE);
	} catch {
		// not written (yet), or another server's
	}
}
let stopping = false;
child.on("exit", (code, signal) => {
	removeServerFile();
	process.exit(stopping ? 0 : (code ?? (signal ? 1 : 0)));
});
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"])
	process.on(sig, () => {
		stopping = true;
		removeServerFile();
		child.kill(sig);
	});

/** Polls GET /api/health until the server answers (wrangler dev takes seconds to tens of seconds to start). */
async function waitReady(deadlineMs) {
	while (Date.now() < deadlineMs && child.exitCode === null) {
		try {
			const res = await fetch(`${url}/api/health`, { signal: AbortSignal.timeout(2000) });
			if (res.ok) return true;
		} catch {
			// not listening yet
		}
		await new Promise((r) => setTimeout(r, 250));
	}
	return false;
}

if (await waitReady(Date.now() + 180_000)) {
	mkdirSync(dirname(DEV_SERVER_FILE), { recursive: true });
	const fakeProviders = fake ? { url: fake.url, providers: faked } : null;
	writeFileSync(DEV_SERVER_FILE, `${JSON.stringify({ url, port, persistTo, pid: process.pid, fakeProviders })}\n`);
	console.log(`[dev] ready on ${url} (written to .wrangler/dev-server.json for npm run token / webhook:send)`);
	try {
		const res = await fetch(`${url}/api/health/ready`);
		if (res.status === 503) {
			const body = await res.json().catch(() => ({}));
			const names = (body.errors ?? []).map((e) => `${e.path} (${e.message})`);
			console.log(`[dev] misconfigured variables: ${names.join(", ") || body.detail || "see GET /api/health/ready"}`);
		} else if (res.ok) console.log("[dev] configuration ok (GET /api/health/ready)");
		else console.log(`[dev] GET /api/health/ready answered ${res.status}`);
	} catch (err) {
		console.log(`[dev] GET /api/health/ready failed: ${err instanceof Error ? err.message : String(err)}`);
	}
} else if (child.exitCode === null) {
	console.error(`[dev] ${url}/api/health did not answer within 180 s`);
}
