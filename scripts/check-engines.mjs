#!/usr/bin/env node
// `npm run check:engines` (run by .ci/run): package.json `engines.node` is the real minimum, and this Node meets it.
//  1. every installed package (package-lock.json) declares a Node range that contains ours, except the ones listed in
//     EXCEPTIONS below, each with the reason it still works and the check that proves it;
//  2. our lower bound is the highest lower bound any of them declares (not stricter than they need);
//  3. the Node running this (CI's) is in our range;
//  4. each exception's proof passes on this Node.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import semver from "semver";
import { Webhook } from "svix";
import { parseArgs, ROOT, usage } from "./lib.mjs";

usage(
	parseArgs(process.argv.slice(2)),
	`usage: npm run check:engines
  Checks that package.json engines.node is contained in every installed package's declared Node range (but the
  documented exceptions), that its minimum is theirs, that this Node (${process.version}) is in it, and that each
  exception works on this Node. Exits 1 on any failure.
  --help   this text`,
);

/**
 * Packages whose declared range leaves out part of ours, why they work there anyway, and a check of that on the
 * running Node. svix declares node >= 22 since 2.0.0 (1.x declared none), when it dropped Node 20 (end of life
 * April 2026), not because it uses a newer API. This project uses only its `Webhook` class: in the Worker and the
 * tests (workerd, where Node's version plays no part) and, on Node, in scripts/send-webhook.mjs, where sign/verify
 * are pure JavaScript (standardwebhooks: @stablelib/base64, fast-sha256).
 */
const EXCEPTIONS = {
	svix: {
		why: "declares node >=22 since 2.0.0 (Node 20's end of life); the Webhook class used here needs nothing newer",
		prove() {
			const wh = new Webhook(`whsec_${Buffer.from("check-engines-secret-0123456789ab").toString("base64")}`);
			const body = JSON.stringify({ type: "user.created", data: { id: "user_check" } });
			const at = new Date();
			const headers = { "svix-id": "msg_check", "svix-timestamp": String(Math.floor(at.getTime() / 1000)) };
			headers["svix-signature"] = wh.sign(headers["svix-id"], at, body);
			wh.verify(body, headers); // throws when the signature does not match
			let forged = false;
			try {
				wh.verify(body.replace("user_check", "user_forged"), headers);
				forged = true;
			} catch {
				// refused, as it must be
			}
			if (forged) throw new Error("svix Webhook.verify accepted a changed body");
		},
	},
	// openapi-backend's $ref resolver, used only on Node by scripts/check-exchanges.mjs (CI's exchange check). It
	// declares node >=22.19.0 from 15.x on; what the check uses (dereferencing local #/ pointers of the served
	// document) runs on Node 20, as proved below and by the check itself.
	"@apidevtools/json-schema-ref-parser": {
		why: "declares node >=22.19.0; dereferencing local $refs (all the exchange check needs) works on Node 20",
		async prove() {
			const { dereference } = await import("@apidevtools/json-schema-ref-parser");
			const schema = await dereference({ $defs: { id: { type: "string" } }, properties: { x: { $ref: "#/$defs/id" } } });
			if (schema.properties.x.type !== "string") throw new Error("a local $ref was not dereferenced");
		},
	},
};

const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8"));
const ours = pkg.engines?.node;
const problems = [];
if (!ours || !semver.validRange(ours)) problems.push(`package.json engines.node is missing or not a range: ${ours}`);

const declared = [];
for (const [path, info] of Object.entries(lock.packages ?? {})) {
	const range = info.engines?.node;
	if (!path || !range || !semver.validRange(range)) continue;
	declared.push({ name: path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length), range });
}

const used = new Set();
let highest = null;
for (const { name, range } of declared) {
	const exception = EXCEPTIONS[name];
	if (exception) {
		used.add(name);
		continue;
	}
	if (ours && !semver.subset(ours, range)) problems.push(`${name} declares node ${range}, which does not contain ours (${ours})`);
	const min = semver.minVersion(range);
	if (min && (!highest || semver.gt(min, highest.min))) highest = { min, name, range };
}
const ourMin = ours ? semver.minVersion(ours) : null;
if (ourMin && highest && semver.gt(ourMin, highest.min))
	problems.push(`engines.node starts at ${ourMin}, but no package needs more than ${highest.min} (${highest.name} ${highest.range})`);
if (ours && !semver.satisfies(process.version, ours)) problems.push(`this Node (${process.version}) is not in engines.node (${ours})`);

for (const [name, exception] of Object.entries(EXCEPTIONS)) {
	const entry = declared.find((d) => d.name === name);
	if (!used.has(name) || (entry && ours && semver.subset(ours, entry.range))) {
		problems.push(`EXCEPTIONS lists ${name}, which ${entry ? `now declares ${entry.range} (contains ours)` : "is not installed"}: remove it`);
		continue;
	}
	try {
		await exception.prove();
		console.log(`[engines] ${name} ${entry.range}: ${exception.why}; works on ${process.version}`);
	} catch (err) {
		problems.push(`${name} does not work on ${process.version}: ${err instanceof Error ? err.message : String(err)}`);
	}
}

if (problems.length > 0) {
	for (const p of problems) console.error(`[engines] ${p}`);
	process.exit(1);
}
console.log(
	`[engines] node ${ours}: contained in the ranges of ${declared.length - used.size} packages, minimum ${ourMin} ` +
		`(as ${highest?.name} ${highest?.range} needs); this Node ${process.version} is in it`,
);
