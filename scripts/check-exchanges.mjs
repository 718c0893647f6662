#!/usr/bin/env node
// Validates every exchange the test suite had with the Worker (dist/exchanges.json, written by
// scripts/exchange-reporter.mjs) against the served OpenAPI document (dist/openapi.json, written by
// scripts/openapi-dump.mjs from GET /api/openapi.json) with openapi-backend, an OpenAPI validation library
// this project did not write. For each exchange on a documented operation:
//   - the status is declared for the operation;
//   - the response's media type is one the document declares for that status (a body where it declares none,
//     or none where it declares one, is a violation);
//   - the body matches the declared schema (openapi-backend's response validator, JSON Schema 2020-12);
//   - the declared headers marked required are sent and every declared header sent matches its schema
//     (openapi-backend's response-header validator), and every header sent is declared (GENERIC_HEADERS aside);
//   - a request the server accepted (2xx) is valid: path, query, header and cookie parameters and the body
//     (openapi-backend's request validator), and its body's media type is declared.
// An exchange on no documented operation is counted; a 2xx there is a violation (an undocumented operation)
// unless it is one of the documentation routes (OUTSIDE_API). Any violation exits 1, listed by operation.
//   node scripts/check-exchanges.mjs [--doc dist/openapi.json] [--exchanges dist/exchanges.json]
//   npm run check:exchanges   (dumps the document first, then checks the last test run's exchanges)
import { readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import OpenAPIBackend from "openapi-backend";
import { parseArgs, ROOT, usage } from "./lib.mjs";

const args = parseArgs(process.argv.slice(2));
usage(args, "usage: node scripts/check-exchanges.mjs [--doc dist/openapi.json] [--exchanges dist/exchanges.json]");
const docPath = resolve(typeof args.doc === "string" ? args.doc : join(ROOT, "dist", "openapi.json"));
const exchangesPath = resolve(typeof args.exchanges === "string" ? args.exchanges : join(ROOT, "dist", "exchanges.json"));

/**
 * Response headers no operation declares, because OpenAPI describes them elsewhere or they belong to HTTP
 * rather than to an operation: Content-Type (the response's `content` keys, checked above) and Content-Length
 * (framing); X-Content-Type-Options, which securityHeaders() puts on every answer of the Worker, documents and
 * 404s included; CORS's Access-Control-* and Vary: Origin (the CORS protocol, answered to allowed origins).
 */
const GENERIC_HEADERS = [/^content-type$/, /^content-length$/, /^x-content-type-options$/, /^vary$/, /^access-control-/];
/** Served but not API operations: the documentation page and the document itself, and CORS preflights. */
const OUTSIDE_API = [
	(x) => x.method === "GET" && /^\/(docs|api\/openapi\.json)(\?|$)/.test(x.url),
	(x) => x.method === "OPTIONS",
];

const isJson = (mediaType) => /^application\/(.+\+)?json$/i.test(mediaType);

const doc = JSON.parse(readFileSync(docPath, "utf8"));
const { files } = JSON.parse(readFileSync(exchangesPath, "utf8"));

/**
 * openapi-backend validates bodies only under `application/json`; the problem answers are
 * `application/problem+json`. The copy it is given also lists each response's and request body's JSON
 * schema under `application/json` (the media types themselves are checked here against the original).
 */
function forValidator(document) {
	const copy = structuredClone(document);
	for (const ops of Object.values(copy.paths ?? {})) {
		for (const op of Object.values(ops)) {
			if (typeof op !== "object" || op === null) continue;
			const contents = [op.requestBody?.content, ...Object.values(op.responses ?? {}).map((r) => r.content)];
			for (const content of contents) {
				if (!content || content["application/json"]) continue;
				const json = Object.keys(content).find(isJson);
				if (json) content["application/json"] = content[json];
			}
		}
	}
	return copy;
}

/** OpenAPI 3.1 schemas are JSON Schema 2020-12: openapi-backend's Ajv instances are swapped for Ajv2020. */
class Backend extends OpenAPIBackend {
	// openapi-backend checks the document against the OpenAPI 3.0 schema, which a 3.1 document fails; the
	// document's own lint is redocly's (npm run lint:openapi).
	validateDefinition() {
		return this.document;
	}
}
const api = new Backend({
	definition: forValidator(doc),
	strict: true,
	coerceTypes: true,
	customizeAjv: (_ajv, opts) => {
		const ajv = new Ajv2020({ ...opts, strict: false, allErrors: true });
		addFormats(ajv);
		// OpenAPI's own formats (zod-openapi emits int32/int64/float/double where it knows them).
		for (const f of ["int32", "int64"]) ajv.addFormat(f, { type: "number", validate: Number.isInteger });
		for (const f of ["float", "double"]) ajv.addFormat(f, { type: "number", validate: () => true });
		return ajv;
	},
});
await api.init();

const mediaTypeOf = (value) => (value ?? "").split(";")[0].trim().toLowerCase();
const ajvText = (errors) =>
	(errors ?? [])
		.slice(0, 5)
		.map((e) => `${e.instancePath || "/"} ${e.message}${e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : ""}`)
		.join("; ");

/** The declared response for a status: exact, then 2XX-style ranges, then default. */
const declaredResponse = (op, status) => op.responses?.[String(status)] ?? op.responses?.[`${String(status)[0]}XX`] ?? op.responses?.default;

/** Violations of one exchange on a documented operation (the original document's view of it). */
function check(x, op) {
	const problems = [];
	const original = doc.paths[op.path][op.method];
	const response = declaredResponse(original, x.status);
	if (!response) return [`status ${x.status} is not declared (declared: ${Object.keys(original.responses ?? {}).join(", ")})`];

	// Media type and body.
	const declaredTypes = Object.keys(response.content ?? {});
	const sentType = mediaTypeOf(x.responseHeaders["content-type"]);
	const hasBody = x.responseLength > 0;
	if (hasBody && declaredTypes.length === 0) problems.push(`a ${sentType || "untyped"} body is sent, the document declares none`);
	else if (hasBody && !declaredTypes.includes(sentType)) problems.push(`Content-Type ${sentType || "(none)"} is not declared (declared: ${declaredTypes.join(", ")})`);
	else if (!hasBody && declaredTypes.length > 0 && x.method !== "HEAD") problems.push(`no body is sent, the document declares ${declaredTypes.join(", ")}`);
	if (hasBody && isJson(sentType) && declaredTypes.includes(sentType)) {
		if (x.responseBody === undefined) problems.push(`body of ${x.responseLength} characters was not recorded, so not checked`);
		else {
			let body;
			try {
				body = JSON.parse(x.responseBody);
			} catch (err) {
				problems.push(`body is not JSON: ${err.message}`);
			}
			if (body !== undefined) {
				const result = api.validator.validateResponse(body, op, x.status);
				if (!result.valid) problems.push(`body does not match the schema: ${ajvText(result.errors)}`);
			}
		}
	}

	// Headers: declared required ones sent and valid; every sent one declared.
	const headerResult = api.validator.validateResponseHeaders(x.responseHeaders, op, { statusCode: x.status, setMatchType: "superset" });
	if (!headerResult.valid) problems.push(`headers: ${ajvText(headerResult.errors)}`);
	const declaredHeaders = new Set(Object.keys(response.headers ?? {}).map((h) => h.toLowerCase()));
	for (const name of Object.keys(x.responseHeaders)) {
		if (!declaredHeaders.has(name) && !GENERIC_HEADERS.some((re) => re.test(name))) problems.push(`response header ${name} is sent but not declared`);
	}

	// A request the server accepted must be one the document allows.
	if (x.status >= 200 && x.status < 300) {
		if (x.requestBody === undefined && x.requestLength > 0) problems.push(`accepted request body of ${x.requestLength} characters was not recorded, so not checked`);
		const req = { method: x.method, path: x.url, headers: x.requestHeaders, body: x.requestBody };
		const result = api.validateRequest(req, op);
		if (!result.valid) problems.push(`accepted request is invalid per the document: ${ajvText(result.errors)}`);
		if (x.requestBody !== undefined && x.requestBody !== "") {
			const types = Object.keys(original.requestBody?.content ?? {});
			const sent = mediaTypeOf(x.requestHeaders["content-type"]);
			if (!types.includes(sent)) problems.push(`accepted request body of type ${sent || "(none)"} is not declared (declared: ${types.join(", ") || "no body"})`);
		}
	}
	return problems;
}

/** Every disagreement of `exchanges` (from `file`) with the document, keyed by operation, status and problem. */
function checkAll(exchanges, file, violations = new Map(), stats = { total: 0, exercised: new Set(), outside: new Map() }) {
	for (const x of exchanges) {
		stats.total++;
		const where = `${file} › ${x.test}`;
		const note = (key, problem) => {
			const k = `${key}: ${problem}`;
			const v = violations.get(k);
			if (v) v.count++;
			else violations.set(k, { count: 1, first: `${where} (${x.method} ${x.url})` });
		};
		let op;
		try {
			// HEAD is GET without the body (RFC 9110, 9.3.2): checked against the GET operation.
			op = api.router.matchOperation({ method: x.method === "HEAD" ? "GET" : x.method, path: x.url, headers: x.requestHeaders }, true);
		} catch {
			op = undefined;
		}
		if (!op) {
			stats.outside.set(x.status, (stats.outside.get(x.status) ?? 0) + 1);
			if (x.status >= 200 && x.status < 300 && !OUTSIDE_API.some((f) => f(x))) {
				note(`${x.method} ${x.url.split("?")[0]}`, `answered ${x.status} but is no operation of the document`);
			}
			continue;
		}
		stats.exercised.add(op.operationId);
		for (const problem of check(x, op)) note(`${op.method.toUpperCase()} ${op.path} (${op.operationId}) ${x.status}`, problem);
	}
	return { violations, stats };
}

/**
 * Known-bad exchanges the check must refuse, run first so a check that has stopped seeing anything (a library
 * upgrade, a document it cannot read) fails instead of passing everything.
 */
const health = {
	test: "canary",
	method: "GET",
	url: "/api/health",
	requestHeaders: {},
	status: 200,
	responseHeaders: { "content-type": "application/json", "x-request-id": "canary-0001" },
	responseBody: JSON.stringify({ status: "ok" }),
};
const canaries = [
	[{ ...health, status: 418 }, "status 418 is not declared"],
	[{ ...health, responseBody: "[]" }, "body does not match the schema"],
	[{ ...health, responseHeaders: { ...health.responseHeaders, "x-powered-by": "canary" } }, "header x-powered-by is sent but not declared"],
	[{ ...health, responseHeaders: { "content-type": "application/json" } }, "x-request-id"],
	[{ ...health, responseHeaders: { ...health.responseHeaders, "content-type": "text/plain" } }, "Content-Type text/plain is not declared"],
	[{ ...health, method: "POST" }, "answered 200 but is no operation of the document"],
	[
		{ ...health, url: "/api/me", status: 401, responseHeaders: { ...health.responseHeaders, "content-type": "application/problem+json" }, responseBody: "{}" },
		"body does not match the schema",
	],
	[{ ...health, url: "/api/orgs/org_canary/products?limit=500", responseBody: '{"data":[],"nextCursor":null}' }, "accepted request is invalid"],
	[
		{
			...health,
			method: "POST",
			url: "/api/orgs/org_canary/categories",
			requestHeaders: { "content-type": "application/json" },
			requestBody: "{}",
			status: 201,
			responseBody: "{}",
		},
		"accepted request is invalid per the document",
	],
];
const blind = canaries.filter(([x, expected]) => {
	const { violations } = checkAll([{ ...x, responseLength: x.responseBody?.length ?? 0 }], "canary");
	return ![...violations.keys()].some((k) => k.includes(expected));
});
if (blind.length > 0) {
	console.log(`exchanges: the check missed ${blind.length} known-bad exchanges (${blind.map(([, e]) => e).join("; ")}): fix scripts/check-exchanges.mjs`);
	process.exit(1);
}

const { violations, stats } = checkAll([]);
for (const [file, exchanges] of Object.entries(files)) checkAll(exchanges, file, violations, stats);

const operations = api.router.getOperations();
const outsideCount = [...stats.outside.values()].reduce((a, b) => a + b, 0);
const outsideText = [...stats.outside].sort(([a], [b]) => a - b).map(([s, n]) => `${n}×${s}`).join(", ");
console.log(
	`exchanges: ${stats.total} from ${Object.keys(files).length} test files checked against ${relative(ROOT, docPath)} (${canaries.length} known-bad ones refused); ` +
		`${stats.total - outsideCount} on ${stats.exercised.size} of ${operations.length} operations, outside the document: ${outsideText || "none"}`,
);
if (stats.total === 0) {
	console.log("exchanges: none recorded: run the tests first (npm test writes dist/exchanges.json)");
	process.exit(1);
}
if (violations.size === 0) {
	console.log("exchanges: every exchange agrees with the document");
	process.exit(0);
}
console.log(`exchanges: ${violations.size} disagreements with the document:`);
for (const [k, v] of [...violations].sort(([a], [b]) => a.localeCompare(b))) console.log(`  ${k}\n      ${v.count}×, first in ${v.first}`);
process.exit(1);
