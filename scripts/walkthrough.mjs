#!/usr/bin/env node
// `npm run walkthrough` (run by .ci/run): the README's five-minute walk-through, exactly as a new user pastes it.
// Copies the project into a temporary directory (a fresh clone: no .dev.vars, no local state), starts
// `npm run dev` there in the background (it picks a free port and writes .wrangler/dev-server.json), waits until it
// answers, runs the README's `sh` block with bash, compares what it prints, line by line, with the README's `text`
// block after it (`…` matches anything within a line), stops the server and exits 1 on any difference.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { copyProject, env, parseArgs, ROOT, usage } from "./lib.mjs";

const HELP = `usage: npm run walkthrough [-- options]
  Runs the README's five-minute walk-through block on a fresh copy of the project against its own npm run dev,
  and checks that it prints what the README says.
  --print          print the block's output and do not compare it
  --keep           keep the temporary copy (its path and the dev server log are printed)
  --timeout <s>    how long to wait for npm run dev to answer (default 300)
  --help           this text`;
const args = parseArgs(process.argv.slice(2));
usage(args, HELP);

/** The walk-through's `sh` block and the `text` block that follows it, from README.md. */
function readWalkthrough(readme) {
	const section = readme.slice(readme.indexOf("### Five-minute walk-through"));
	const script = /```sh\n([\s\S]*?)```/.exec(section);
	const output = /```text\n([\s\S]*?)```/.exec(section);
	if (!script || !output || output.index < script.index) throw new Error("README.md: no ```sh block followed by a ```text block in the walk-through");
	return { script: script[1], expected: output[1] };
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
const { script, expected } = readWalkthrough(readFileSync(join(ROOT, "README.md"), "utf8"));
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
	console.log(`[walkthrough] npm run dev answers on ${url}; running the README block`);
	const run = spawnSync("bash", ["-c", script], { cwd: dir, encoding: "utf8", env, timeout: 300_000 });
	if (args.print) {
		process.stdout.write(run.stdout);
		process.stderr.write(run.stderr);
		status = run.status ?? 1;
	} else {
		const diff = compare(run.stdout, expected);
		if (diff || run.stderr.trim()) {
			console.error(`[walkthrough] the output differs from README.md (${diff ?? "unexpected output on stderr"})`);
			console.error(`--- stdout ---\n${run.stdout}--- stderr ---\n${run.stderr}--------------`);
		} else {
			console.log(`[walkthrough] ok: ${lines(expected).length} lines as the README says`);
			status = 0;
		}
	}
} catch (err) {
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
