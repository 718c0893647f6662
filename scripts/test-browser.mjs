#!/usr/bin/env node
// `npm run test:browser`: opens /docs in a real Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser is ever downloaded) against the Worker served locally by `wrangler dev`
// (local mode, a free port, a throw-away state directory), and checks that the API reference renders
// the operations of /api/openapi.json and that the page made no request outside the Worker's origin.
// Prints "ok"/"not ok" per check and a closing line "browser: N passed, N failed"; exit code 1 on any
// failure. `--json FILE` also writes {"passed":N,"failed":N} there (.ci/run folds it into its total).
/* global document -- used only in callbacks that run in the page */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { parseArgs, ROOT } from "./lib.mjs";

const args = parseArgs(process.argv.slice(2));
if (args.help) {
	console.log(`Usage: npm run test:browser [-- --json FILE] [--chromium PATH] [--screenshot FILE]

Starts \`wrangler dev\` (local) on a free port, opens /docs in headless Chromium and checks that the API
reference renders operations from /api/openapi.json with no request outside the Worker's origin.
  --json FILE        also write {"passed":N,"failed":N} to FILE
  --chromium PATH    the Chromium binary (default /usr/bin/chromium; install: apt-get install -y chromium)
  --screenshot FILE  where to save the screenshot (default test/browser/.out/docs.png, git-ignored)
  --help             this text`);
	process.exit(0);
}
const CHROMIUM = typeof args.chromium === "string" ? args.chromium : "/usr/bin/chromium";
const SCREENSHOT = typeof args.screenshot === "string" ? args.screenshot : join(ROOT, "test", "browser", ".out", "docs.png");
const READY_DEADLINE_MS = 90_000;
const RENDER_DEADLINE_MS = 30_000;

const results = [];
function check(name, ok, detail = "") {
	results.push(ok);
	console.log(`${ok ? "ok" : "not ok"} - ${name}${!ok && detail ? `\n    ${detail.replaceAll("\n", "\n    ")}` : ""}`);
}

function freePort() {
	return new Promise((resolve, reject) => {
		const srv = createServer();
		srv.unref();
		srv.on("error", reject);
		srv.listen(0, "127.0.0.1", () => {
			const { port } = srv.address();
			srv.close(() => resolve(port));
		});
	});
}

/** `wrangler dev` in local mode on a free port; its output is kept and shown only if something fails. */
async function startWorker(stateDir) {
	const port = await freePort();
	const inspectorPort = await freePort();
	const output = [];
	const child = spawn(
		join(ROOT, "node_modules", ".bin", "wrangler"),
		[
			"dev",
			"--local",
			"--ip",
			"127.0.0.1",
			"--port",
			String(port),
			"--inspector-port",
			String(inspectorPort),
			"--persist-to",
			stateDir,
			"--show-interactive-dev-session=false",
			"--log-level",
			"warn",
		],
		{
			cwd: ROOT,
			detached: true, // its own process group, so stopping it also stops workerd
			stdio: ["ignore", "pipe", "pipe"],
			env: {
				...process.env,
				WRANGLER_SEND_METRICS: "false",
				CLOUDFLARE_CF_FETCH_ENABLED: "false",
				NO_COLOR: "1",
				CI: "true",
			},
		},
	);
	child.stdout.on("data", (d) => output.push(String(d)));
	child.stderr.on("data", (d) => output.push(String(d)));
	let exited = null;
	child.on("exit", (code, signal) => (exited = { code, signal }));
	const origin = `http://127.0.0.1:${port}`;
	const stop = () =>
		new Promise((resolve) => {
			if (exited) return resolve();
			child.on("exit", () => resolve());
			try {
				process.kill(-child.pid, "SIGTERM");
			} catch {
				return resolve();
			}
			const force = setTimeout(() => {
				try {
					process.kill(-child.pid, "SIGKILL");
				} catch {
					// already gone
				}
			}, 5_000);
			force.unref();
		});
	// Readiness: poll /api/health until it answers 200, the server exits, or the deadline passes.
	const deadline = Date.now() + READY_DEADLINE_MS;
	for (;;) {
		if (exited) throw new Error(`wrangler dev exited (${JSON.stringify(exited)}):\n${output.join("")}`);
		try {
			const res = await fetch(`${origin}/api/health`, { signal: AbortSignal.timeout(2_000) });
			if (res.status === 200) break;
		} catch {
			// not listening yet
		}
		if (Date.now() > deadline) {
			await stop();
			throw new Error(`wrangler dev not ready after ${READY_DEADLINE_MS} ms:\n${output.join("")}`);
		}
		await new Promise((r) => setTimeout(r, 250));
	}
	return { origin, output, stop };
}

/** Summaries of a spread of operations in the document (first, middle, last, and a few between). */
function sampleSummaries(doc) {
	const all = [];
	for (const ops of Object.values(doc.paths ?? {})) {
		for (const op of Object.values(ops)) if (op && typeof op.summary === "string" && op.summary) all.push(op.summary);
	}
	const unique = [...new Set(all)];
	if (unique.length <= 6) return unique;
	const picks = new Set([0, 1, Math.floor(unique.length / 3), Math.floor(unique.length / 2), Math.floor((2 * unique.length) / 3), unique.length - 1]);
	return [...picks].map((i) => unique[i]);
}

const stateDir = mkdtempSync(join(tmpdir(), "docs-browser-state-"));
const profileDir = mkdtempSync(join(tmpdir(), "docs-browser-profile-"));
let worker;
let context;
try {
	worker = await startWorker(stateDir);
	const { origin } = worker;

	const docRes = await fetch(`${origin}/api/openapi.json`);
	const doc = await docRes.json();
	const summaries = sampleSummaries(doc);
	check("the Worker serves the OpenAPI document with operation summaries", docRes.status === 200 && summaries.length >= 3, `status ${docRes.status}, ${summaries.length} summaries`);

	const script = await fetch(`${origin}/docs/redoc.standalone.js`);
	const scriptBody = await script.text();
	check(
		"the Worker serves the viewer script from static assets",
		script.status === 200 && /javascript/.test(script.headers.get("content-type") ?? "") && scriptBody.length > 100_000,
		`status ${script.status}, content-type ${script.headers.get("content-type")}, ${scriptBody.length} bytes`,
	);

	context = await chromium.launchPersistentContext(profileDir, {
		executablePath: CHROMIUM,
		headless: true,
		viewport: { width: 1280, height: 900 },
		serviceWorkers: "block",
		args: [
			"--headless",
			"--no-sandbox",
			"--disable-gpu",
			"--disable-quic",
			"--no-first-run",
			"--disable-background-networking",
			"--disable-component-update",
			"--disable-sync",
		],
	});
	const requests = [];
	const outside = [];
	const pageErrors = [];
	const consoleErrors = [];
	const isLocal = (url) => url.startsWith(`${origin}/`) || /^(data|blob|about):/.test(url);
	context.on("request", (req) => {
		requests.push(req.url());
		if (!isLocal(req.url())) outside.push(req.url());
	});
	// Anything that tries to leave the origin is also refused, so an offline run fails fast rather than hanging.
	await context.route("**/*", (route) => (isLocal(route.request().url()) ? route.continue() : route.abort("blockedbyclient")));
	const page = context.pages()[0] ?? (await context.newPage());
	page.on("pageerror", (err) => pageErrors.push(String(err)));
	page.on("console", (msg) => msg.type() === "error" && consoleErrors.push(msg.text()));

	const res = await page.goto(`${origin}/docs`, { waitUntil: "load" });
	check("GET /docs answers 200 text/html", res?.status() === 200 && /text\/html/.test(res.headers()["content-type"] ?? ""), `status ${res?.status()}`);

	// Redoc renders each operation as an h2 in the main column; wait for the sampled summaries to appear there.
	let rendered = [];
	try {
		await page.waitForFunction(
			(want) => {
				const headings = [...document.querySelectorAll("h2")].map((h) => h.textContent);
				return want.every((s) => headings.some((h) => h.includes(s)));
			},
			summaries,
			{ timeout: RENDER_DEADLINE_MS, polling: 100 },
		);
	} catch {
		// reported below with what did render
	}
	rendered = await page.evaluate(() => [...document.querySelectorAll("h2")].map((h) => h.textContent.trim()));
	const missing = summaries.filter((s) => !rendered.some((h) => h.includes(s)));
	check(
		`the reference renders operations (${summaries.length} sampled summaries appear as headings)`,
		missing.length === 0 && summaries.length > 0,
		`missing: ${JSON.stringify(missing)}; rendered headings: ${JSON.stringify(rendered.slice(0, 20))}`,
	);
	const sidebarOps = await page.locator("[role=menuitem], li[data-item-id]").count();
	check("the sidebar lists the operations", sidebarOps >= summaries.length, `${sidebarOps} sidebar entries`);

	mkdirSync(join(SCREENSHOT, ".."), { recursive: true });
	await page.screenshot({ path: SCREENSHOT });
	console.log(`# screenshot: ${SCREENSHOT}`);

	check("the page raised no script errors", pageErrors.length === 0, pageErrors.join("\n"));
	if (consoleErrors.length) console.log(`# console errors:\n#   ${consoleErrors.join("\n#   ")}`);
	check(
		`every request stayed on the Worker's origin (${requests.length} requests)`,
		outside.length === 0 && requests.some((u) => u === `${origin}/api/openapi.json`),
		outside.length ? `outside: ${JSON.stringify(outside)}` : `requests: ${JSON.stringify(requests)}`,
	);
} catch (err) {
	check("the browser test ran to the end", false, err instanceof Error ? (err.stack ?? err.message) : String(err));
} finally {
	await context?.close().catch(() => {});
	await worker?.stop();
	const failed = results.filter((ok) => !ok).length;
	if (failed > 0 && worker) {
		// eslint-disable-next-line no-control-regex
		const plain = worker.output.join("").replace(/\x1b\[[0-9;]*m/g, "");
		console.log(`# wrangler dev output:\n${plain.replace(/^/gm, "#   ")}`);
	}
	rmSync(stateDir, { recursive: true, force: true });
	rmSync(profileDir, { recursive: true, force: true });
	const passed = results.length - failed;
	if (typeof args.json === "string") writeFileSync(args.json, JSON.stringify({ passed, failed }));
	console.log(`browser: ${passed} passed, ${failed} failed`);
	process.exitCode = failed > 0 || results.length === 0 ? 1 : 0;
}
