#!/usr/bin/env node
// The Worker bundle's size as `npm run bench -- cost` reports it (issue 17: <= 150 KiB gzip), in two seconds
// instead of six minutes, and what each package or file adds to it.
//   node bench/bundle-size.mjs [--by package|file|none] [--top 30]
// Builds like the cost benchmark (`wrangler deploy --dry-run`, wrangler.toml's minify and alias settings) into
// bench/.out/bundle, then prints the gzip (level 9) and raw size of the output module. With --by, each group's
// share is its marginal gzip size: the bundle's gzip size minus that of the bundle with the group's bytes
// removed (located through the source map), so shared strings and repeated code are counted where they
// cost. A package whose own source maps are misplaced shows up under its mapped path (drizzle-orm's files
// under node_modules/src/).
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import { parseArgs, ROOT } from "../scripts/lib.mjs";

const args = parseArgs(process.argv.slice(2));
if (args.help) {
	console.log("usage: node bench/bundle-size.mjs [--by package|file|none] [--top 30]   (default --by package)");
	process.exit(0);
}
const by = typeof args.by === "string" ? args.by : "package";
const top = Number(args.top ?? 30);
const OUT = join(ROOT, "bench", ".out", "bundle");

execFileSync(join(ROOT, "node_modules", ".bin", "wrangler"), ["deploy", "--dry-run", "--outdir", OUT], {
	cwd: ROOT,
	stdio: ["ignore", "ignore", "inherit"],
	env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
});
const code = readFileSync(join(OUT, "index.js"));
const gzip = (buf) => gzipSync(buf, { level: 9 }).length;
const kib = (bytes) => (bytes / 1024).toFixed(2);
const total = gzip(code);
console.log(`bundle ${kib(total)} KiB gzip (${kib(code.length)} KiB minified): ${join(OUT, "index.js")}`);
if (by === "none") process.exit(0);

/** Output byte ranges [start, end) per source index, from the source map's mappings (base64 VLQ). */
function rangesBySource(map, text) {
	const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const lineStarts = [0];
	for (let i = 0; i < text.length; i++) if (text[i] === 10) lineStarts.push(i + 1);
	const points = []; // [output offset, source index or -1]
	let source = 0;
	map.mappings.split(";").forEach((line, lineNo) => {
		let column = 0;
		for (const segment of line ? line.split(",") : []) {
			const fields = [];
			let value = 0;
			let shift = 0;
			for (const ch of segment) {
				const digit = B64.indexOf(ch);
				value += (digit & 31) << shift;
				if (digit & 32) shift += 5;
				else {
					fields.push(value & 1 ? -(value >> 1) : value >> 1);
					value = 0;
					shift = 0;
				}
			}
			column += fields[0];
			if (fields.length > 1) source += fields[1];
			points.push([lineStarts[lineNo] + column, fields.length > 1 ? source : -1]);
		}
	});
	points.sort((a, b) => a[0] - b[0]);
	const ranges = new Map();
	points.forEach(([start, src], i) => {
		if (src < 0) return;
		const end = i + 1 < points.length ? points[i + 1][0] : text.length;
		if (!ranges.has(src)) ranges.set(src, []);
		ranges.get(src).push([start, end]);
	});
	return ranges;
}

const map = JSON.parse(readFileSync(join(OUT, "index.js.map"), "utf8"));
const groupOf = (source) => {
	const path = relative(ROOT, resolve(OUT, map.sourceRoot ?? "", source));
	if (by === "file") return path;
	const pkg = /^node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
	if (!pkg) return path.split("/").slice(0, 2).join("/");
	return existsSync(join(ROOT, pkg[0], "package.json")) ? pkg[1] : `${pkg[0]}/ (some package's misplaced source map)`;
};
const groups = new Map();
for (const [src, ranges] of rangesBySource(map, code)) {
	const group = groupOf(map.sources[src]);
	if (!groups.has(group)) groups.set(group, []);
	groups.get(group).push(...ranges);
}
const rows = [...groups].map(([group, ranges]) => {
	const keep = Buffer.alloc(code.length, 1);
	let raw = 0;
	for (const [start, end] of ranges) {
		keep.fill(0, start, end);
		raw += end - start;
	}
	const rest = Buffer.concat(ranges.length ? splitKept(keep) : [code]);
	return { group, raw, gzip: total - gzip(rest) };
});
/** The bundle's bytes whose keep flag is set, as slices. */
function splitKept(keep) {
	const parts = [];
	let start = -1;
	for (let i = 0; i <= keep.length; i++) {
		if (i < keep.length && keep[i]) {
			if (start < 0) start = i;
		} else if (start >= 0) {
			parts.push(code.subarray(start, i));
			start = -1;
		}
	}
	return parts;
}
rows.sort((a, b) => b.gzip - a.gzip);
console.log(`marginal KiB gzip / KiB minified, by ${by} (top ${top} of ${rows.length}):`);
for (const r of rows.slice(0, top)) console.log(`${kib(r.gzip).padStart(7)} ${kib(r.raw).padStart(8)}  ${r.group}`);
