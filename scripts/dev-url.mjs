#!/usr/bin/env node
// `npm run -s dev:url`: prints the base URL of the running `npm run dev` server (from .wrangler/dev-server.json),
// e.g. for `API=$(npm run -s dev:url)`. Exits 1 when no dev server is running.
import { parseArgs, readDevServer, usage } from "./lib.mjs";

usage(
	parseArgs(process.argv.slice(2)),
	`usage: npm run -s dev:url
  Prints the base URL of the running npm run dev server (from .wrangler/dev-server.json), e.g. http://localhost:8787.
  Exits 1 when none is running.
  --help   this text`,
);
const server = readDevServer();
let alive = false;
if (server) {
	try {
		process.kill(server.pid, 0);
		alive = true;
	} catch (err) {
		alive = err.code === "EPERM";
	}
}
if (!server || !alive) {
	console.error("no `npm run dev` server is running (start it in another terminal)");
	process.exit(1);
}
console.log(server.url);
