#!/usr/bin/env node
// `npm run walkthrough` (run by .ci/run): the README's walk-throughs, exactly as a new user pastes them: the
// five-minute walk-through, then the payments one (Razorpay and Stripe served by the fake npm run dev starts).
// Copies the project into a temporary directory (a fresh clone: no .dev.vars, no local state), starts
// `npm run dev` there in the background (it picks a free port and writes .wrangler/dev-server.json), waits until it
// answers, runs each walk-through's `sh` block with bash, in order, compares what it prints, line by line, with the
// README's `text` block after it (`…` matches anything within a line), stops the server and exits 1 on any difference.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { copyProject, env, parseArgs, ROOT, usage } from "./lib.mjs";

/** The README headings of the walk-throughs, run in this order against one server. */
const SECTIONS = ["Five-minute walk-through", "Payments without provider accounts"];

const HELP = `usage: npm run walkthrough [-- options]
  Runs the README's walk-through blocks (${SECTIONS.map((s) => `"${s}"`).join(", ")}) on a fresh copy of
  the project against its own npm run dev, and checks that each prints what the README says.
  --section <text> only the walk-through whose heading contains <text>
  --print          print the blocks' output and do not compare it
  --keep           keep the temporary copy (its path and the dev server log are printed)
  --timeout <s>    how long to wait for npm run dev to answer (default 300)
  --help           this text`;
const args = parseArgs(process.argv.slice(2));
usage(args, HELP);

/** A walk-through's `sh` block and the `text` block that follows it, from README.md (under `### <heading>`). */
function readWalkthrough(readme, heading) {
	const at = readme.indexOf(`### ${heading}`);
	if (at < 0) throw new Error(`README.md: no section "### ${heading}"`);
	const section = readme.slice(at);
	const script = /```sh\n([\s\S]*?)```/.exec(section);
	const output = /```text\n([\s\S]*?)```/.exec(section);
	if (!script || !output || output.index < script.index)
		throw new Error(`README.md: no \`\`\`sh block followed by a \`\`\`text block in "${heading}"`);
	return { heading, script: script[1], expected: output[1] };
}

const lines = (s) => s.replace(/\n+$/, "").split("\n");
const pattern = (line) => new RegExp(`^${line.split("…").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`);

/** The first difference between the output and the expected lines, or null. */
function compare(actual, expected) {
	const a = lines(actual);
	const e = lines(expected);
	for (let i = 0; i < Math.max(a.length, e.length); i++) {
		if (i >= a.length) return `line ${i + 1}: expected ${JSON.stringify(e[i])}, the output ended`;
		if (i >= e.length) return `line ${i + 1}: unexpected ${JSON.stringify(a[i])}`;
		if (!pattern(e[i]).test(a[i])) return `line ${i + 1}:\n  expected ${e[i]}\n  got      ${a[i]}`;
	}
	return null;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const readme = readFileSync(join(ROOT, "README.md"), "utf8");
const walkthroughs = SECTIONS.filter((s) => typeof args.section !== "string" || s.includes(args.section)).map((s) => readWalkthrough(readme, s));
if (walkthroughs.length === 0) {
	console.error(`[walkthrough] no walk-through heading contains "${args.section}" (${SECTIONS.join(", ")})`);
	process.exit(1);
}
const dir = mkdtempSync(join(tmpdir(), "edge-tenant-walkthrough-"));
copyProject(dir);
const logPath = join(dir, "dev.log");
const log = openSync(logPath, "w");
console.log(`[walkthrough] fresh copy in ${dir}; starting npm run dev (log: dev.log there)`);
const dev = spawn("npm", ["run", "dev"], { cwd: dir, detached: true, stdio: ["ignore", log, log], env });
let devExited = false;
dev.on("exit", () => {
	devExited = true;
});

async function stopDev() {
	if (devExited) return;
	try {
		process.kill(-dev.pid, "SIGTERM"); // the whole process group: npm, dev.mjs, wrangler, workerd
	} catch {
		return;
	}
	for (let i = 0; i < 80 && !devExited; i++) await sleep(250);
	if (!devExited) {
		try {
			process.kill(-dev.pid, "SIGKILL");
		} catch {
			// gone
		}
	}
}

let status = 1;
try {
	const serverFile = join(dir, ".wrangler", "dev-server.json");
	const deadline = Date.now() + Number(args.timeout ?? 300) * 1000;
	while (!existsSync(serverFile) && !devExited && Date.now() < deadline) await sleep(500);
	if (!existsSync(serverFile)) throw new Error(devExited ? "npm run dev exited before it answered" : "npm run dev did not answer in time");
	const { url } = JSON.parse(readFileSync(serverFile, "utf8"));
	status = 0;
	for (const { heading, script, expected } of walkthroughs) {
		console.log(`[walkthrough] npm run dev answers on ${url}; running the README block "${heading}"`);
		const started = Date.now();
		const run = spawnSync("bash", ["-c", script], { cwd: dir, encoding: "utf8", env, timeout: 300_000 });
		const took = `${((Date.now() - started) / 1000).toFixed(1)} s`;
		if (args.print) {
			process.stdout.write(run.stdout);
			process.stderr.write(run.stderr);
			if (run.status !== 0) status = run.status ?? 1;
			continue;
		}
		const diff = compare(run.stdout, expected);
		if (diff || run.stderr.trim()) {
			console.error(`[walkthrough] "${heading}": the output differs from README.md (${diff ?? "unexpected output on stderr"})`);
			console.error(`--- stdout ---\n${run.stdout}--- stderr ---\n${run.stderr}--------------`);
			status = 1;
		} else console.log(`[walkthrough] ok: "${heading}" printed ${lines(expected).length} lines as the README says (${took})`);
	}
} catch (err) {
	status = 1;
	console.error(`[walkthrough] ${err instanceof Error ? err.message : String(err)}`);
} finally {
	await stopDev();
	if (status !== 0 || args.keep) {
		const text = readFileSync(logPath, "utf8");
		console.error(`--- npm run dev (last 40 lines of ${logPath}) ---\n${lines(text).slice(-40).join("\n")}`);
	}
	if (args.keep) console.log(`[walkthrough] kept ${dir}`);
	else rmSync(dir, { recursive: true, force: true });
}
process.exit(status);
