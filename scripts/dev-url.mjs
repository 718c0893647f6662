#!/usr/bin/env node
// `npm run -s dev:url`: prints the base URL of the running `npm run dev` server (from .wrangler/dev-server.json),
// e.g. for `API=$(npm run -s dev:url)`; with --fake-providers, the URL of the fake Razorpay/Stripe it started.
// Exits 1 when no dev server (or no fake) is running.
import { parseArgs, readDevServer, usage } from "./lib.mjs";

const args = parseArgs(process.argv.slice(2));
usage(
	args,
	`usage: npm run -s dev:url [-- --fake-providers]
  Prints the base URL of the running npm run dev server (from .wrangler/dev-server.json), e.g. http://localhost:8787.
  Exits 1 when none is running.
  --fake-providers   the URL of the fake Razorpay/Stripe that npm run dev started instead (e.g. http://localhost:8790);
                     exits 1 when it started none (.dev.vars configures both providers, or --no-fake-providers)
  --help             this text`,
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
if (args["fake-providers"]) {
	if (!server.fakeProviders?.url) {
		console.error("npm run dev started no fake providers (.dev.vars configures Razorpay and Stripe, or --no-fake-providers)");
		process.exit(1);
	}
	console.log(server.fakeProviders.url);
} else console.log(server.url);
