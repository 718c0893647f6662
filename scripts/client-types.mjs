#!/usr/bin/env node
// `npm run build:client`: the typed client as a package entry (`edge-tenant-backend/client`) for frontends.
// A declaration emit of src/client.ts would drag in the whole Worker (app → routes → services → env), whose types
// need @cloudflare/workers-types (D1Database, Queue, …), which a frontend (lib DOM) cannot load. Instead the route
// schema the client is typed by (hono's ExtractSchema<AppType>) is printed structurally with the TypeScript
// checker, so dist/client/index.d.ts only needs `hono`; dist/client/index.js is src/client.ts transpiled.
// The response headers each operation declares, per status, are generated from the served OpenAPI document
// (GET /api/openapi.json, from a local Worker, or --doc <file>): every response's `typedHeaders` is typed by
// them (RateLimit-* and Retry-After as numbers, Location only on the 201s that declare it, required headers
// present). The build fails when src/client.ts's DECLARED_HEADERS (what the client reads at run time) and the
// document disagree.
// test/client/ (a strict DOM project without workers types) type-checks against it in .ci/run.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import ts from "typescript";
import { parseArgs, ROOT, servedOpenApiDocument, usage } from "./lib.mjs";

const args = parseArgs(process.argv.slice(2));
usage(
	args,
	`usage: npm run build:client [-- --doc <openapi.json>]
  Writes dist/client/index.d.ts (the API's route types and each operation's declared response headers,
  self-contained: only \`hono\` is needed) and dist/client/index.js (src/client.ts), the package's "./client" export.
  --doc    the OpenAPI document to read the headers from (default: GET /api/openapi.json from a local Worker)
  --help   this text`,
);
const doc = typeof args.doc === "string" ? JSON.parse(readFileSync(resolve(args.doc), "utf8")) : await servedOpenApiDocument();

const OUT = join(ROOT, "dist", "client");
const probe = join(ROOT, "src", "__client_schema__.ts");
const probeText = 'import type { ExtractSchema } from "hono/types";\nimport type { AppType } from "./app";\nexport type AppSchema = ExtractSchema<AppType>;\n';

const config = ts.getParsedCommandLineOfConfigFile(join(ROOT, "tsconfig.json"), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
const host = ts.createCompilerHost(config.options);
const getSourceFile = host.getSourceFile.bind(host);
const fileExists = host.fileExists.bind(host);
host.getSourceFile = (file, lang, ...rest) => (file === probe ? ts.createSourceFile(file, probeText, lang) : getSourceFile(file, lang, ...rest));
host.fileExists = (file) => file === probe || fileExists(file);
const program = ts.createProgram([probe, ...config.fileNames.filter((f) => f.endsWith(".d.ts"))], config.options, host);
const errors = ts.getPreEmitDiagnostics(program);
if (errors.length > 0) {
	console.error(ts.formatDiagnosticsWithColorAndContext(errors, host));
	process.exit(1);
}
const checker = program.getTypeChecker();
const FLAGS = ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.InTypeAlias | ts.TypeFormatFlags.UseStructuralFallback;
const alias = program.getSourceFile(probe).statements.find(ts.isTypeAliasDeclaration);
const schema = checker.typeToString(checker.getTypeAtLocation(alias.name), undefined, FLAGS);

/** Names the printed types use that the .d.ts must import or define (string literals skipped). */
const FROM_HONO = { MergeSchemaPath: "hono/types", JSONValue: "hono/utils/types" };
const GLOBAL = new Set(["Record", "Partial", "Array", "ReadonlyArray", "Date", "Promise", "Blob", "File", "Uint8Array", "ArrayBuffer"]);
const namesIn = (text) =>
	new Set([...text.replace(/"(?:[^"\\]|\\.)*"/g, '""').matchAll(/(?<![\w.$])([A-Z][A-Za-z0-9_]*)\b/g)].map((m) => m[1]));

/** A type alias or interface of that name declared in src/, printed structurally. */
function localDefinition(name) {
	for (const file of program.getSourceFiles()) {
		if (!file.fileName.startsWith(join(ROOT, "src"))) continue;
		for (const st of file.statements) {
			if ((ts.isTypeAliasDeclaration(st) || ts.isInterfaceDeclaration(st)) && st.name.text === name) {
				return checker.typeToString(checker.getTypeAtLocation(st.name), undefined, FLAGS);
			}
		}
	}
	throw new Error(`the client types use ${name}, which is neither hono's, global nor declared in src/`);
}

const imports = new Map();
const locals = new Map();
const pending = [schema];
while (pending.length > 0) {
	for (const name of namesIn(pending.pop())) {
		if (GLOBAL.has(name) || locals.has(name)) continue;
		if (FROM_HONO[name]) {
			imports.set(name, FROM_HONO[name]);
			continue;
		}
		const text = localDefinition(name);
		locals.set(name, text);
		pending.push(text);
	}
}

// The response headers of every operation and status, from the document. A header's schema gives its type:
// integer → number (read with Number()), string (an enum: its literals) → string; a required one is never absent.
const headerTypes = new Map(); // name → "integer" | "string": what the client reads at run time
const tsType = (name, schema) => {
	const kind = schema?.type === "integer" ? "integer" : schema?.type === "string" ? "string" : null;
	if (!kind) throw new Error(`response header ${name}: schema ${JSON.stringify(schema)} is neither integer nor string`);
	if (headerTypes.has(name) && headerTypes.get(name) !== kind) throw new Error(`response header ${name} is declared both integer and string`);
	headerTypes.set(name, kind);
	if (kind === "integer") return "number";
	return Array.isArray(schema.enum) ? schema.enum.map((v) => JSON.stringify(v)).join(" | ") : "string";
};
const resolveHeader = (h) => (h.$ref ? doc.components.headers[h.$ref.split("/").pop()] : h);
const headerSets = new Map(); // printed object type → its alias name
const operations = [];
for (const [path, ops] of Object.entries(doc.paths)) {
	for (const [method, op] of Object.entries(ops)) {
		const statuses = Object.entries(op.responses ?? {}).map(([status, response]) => {
			const fields = Object.entries(response.headers ?? {}).map(([name, ref]) => {
				const h = resolveHeader(ref);
				return `readonly ${JSON.stringify(name)}${h.required ? "" : "?"}: ${tsType(name, h.schema)};`;
			});
			const text = `{ ${fields.join(" ")} }`;
			if (!headerSets.has(text)) headerSets.set(text, `Headers${headerSets.size}`);
			return `${status}: ${headerSets.get(text)};`;
		});
		operations.push(`${JSON.stringify(`${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ":$1")}`)}: { ${statuses.join(" ")} };`);
	}
}
const anyHeader = [...headerTypes].map(([name, kind]) => `readonly ${JSON.stringify(name)}?: ${kind === "integer" ? "number" : "string"};`);

const dts = [
	"// Generated by scripts/client-types.mjs (npm run build:client) from the routes in src/ and the served OpenAPI document: do not edit.",
	'import type { hc } from "hono/client";',
	'import type { Hono } from "hono";',
	'import type { BlankEnv } from "hono/types";',
	...[...imports].map(([name, from]) => `import type { ${name} } from "${from}";`),
	...[...locals].map(([name, text]) => `type ${name} = ${text};`),
	"/** The routes as the Worker's handlers type them (hono's ExtractSchema<AppType>). */",
	`type RouteSchema = ${schema};`,
	"/** RFC 9457 problem+json, the body of every error answer (src/errors.ts). */",
	"export interface Problem { type: string; title: string; status: number; detail: string; requestId: string; traceId: string; code: string; errors?: { path: string; message: string }[] }",
	"/** Error statuses any route may answer with a Problem (auth, membership, guards, preconditions, limits, configuration). */",
	"export type ProblemStatus = 400 | 401 | 402 | 403 | 404 | 405 | 409 | 412 | 413 | 415 | 422 | 429 | 500 | 502 | 503;",
	"/** A query (or header) object whose fields are all optional may be left out. */",
	"type OptionalWhenEmpty<I, K extends string> = I extends { [P in K]: infer Q } ? ({} extends Q ? Omit<I, K> & { [P in K]?: Q } : I) : I;",
	"type RelaxInput<I> = OptionalWhenEmpty<OptionalWhenEmpty<I, \"query\">, \"header\">;",
	"type Endpoint<E> = E extends { input: infer I } ? Omit<E, \"input\"> & { input: RelaxInput<I> } : E;",
	"type InputOf<E> = E extends { input: infer I } ? RelaxInput<I> : {};",
	"/** One problem answer per status, so that narrowing on `status` narrows its `typedHeaders` too. */",
	"type ProblemEndpoint<E, S> = S extends ProblemStatus ? { input: InputOf<E>; output: Problem; outputFormat: \"json\"; status: S } : never;",
	"type WithProblems<E> = Endpoint<E> | ProblemEndpoint<E, ProblemStatus>;",
	"/** Every route of the API: paths, methods, inputs, outputs and statuses, error answers included. */",
	"export type AppSchema = { [Path in keyof RouteSchema]: { [Method in keyof RouteSchema[Path]]: WithProblems<RouteSchema[Path][Method]> } };",
	"/** The API as a hono app type, for `hc<AppType>()` and hono's InferRequestType / InferResponseType. */",
	'export type AppType = Hono<BlankEnv, AppSchema, "/">;',
	"// The response headers the OpenAPI document declares, generated from it (GET /api/openapi.json).",
	...[...headerSets].map(([text, alias]) => `type ${alias} = ${text};`),
	"/** The headers the document declares for each operation (\"METHOD /path\", as the client's path keys spell it) and status, typed by their schemas; required ones are always present. */",
	`export type ResponseHeaders = { ${operations.join(" ")} };`,
	"/** Any declared header, optional: the headers of a status the document does not list for the operation. */",
	`type AnyDeclaredHeaders = { ${anyHeader.join(" ")} };`,
	"type HeadersOf<Op extends string, S> = Op extends keyof ResponseHeaders ? (S extends keyof ResponseHeaders[Op] ? ResponseHeaders[Op][S] : AnyDeclaredHeaders) : AnyDeclaredHeaders;",
	"type WithTypedHeaders<R, Op extends string> = R extends { status: infer S } ? R & { readonly typedHeaders: HeadersOf<Op, S> } : never;",
	'type Method = "get" | "post" | "put" | "patch" | "delete";',
	"/** hono's client for the API (`C`), each response with `typedHeaders`: the headers declared for its operation and status. */",
	"export type TypedClient<C, P extends string = \"\"> = { [K in keyof C]: K extends `$${infer M extends Method}` ? (C[K] extends (...args: infer A) => Promise<infer R> ? (...args: A) => Promise<WithTypedHeaders<R, `${Uppercase<M>} ${P}`>> : C[K]) : K extends `$${string}` ? C[K] : TypedClient<C[K], `${P}/${K & string}`> };",
	"/** Every response header the document declares and its schema's type: what `typedHeaders` reads. */",
	`export declare const DECLARED_HEADERS: { ${[...headerTypes].map(([name, kind]) => `readonly ${JSON.stringify(name)}: ${JSON.stringify(kind)};`).join(" ")} };`,
	"/**",
	" * Typed client: `createClient(baseUrl, getToken?, fetch?)`; every call sends `Authorization: Bearer <token>` when getToken gives one.",
	" * Every response has `typedHeaders`: `res.typedHeaders[\"RateLimit-Remaining\"]` (number | undefined), on a 201 that creates a resource `res.typedHeaders.Location`.",
	" */",
	"export declare function createClient(baseUrl: string, getToken?: () => Promise<string | null | undefined>, fetchImpl?: typeof fetch): TypedClient<ReturnType<typeof hc<AppType>>>;",
	"",
].join("\n");

const js = ts.transpileModule(ts.sys.readFile(join(ROOT, "src", "client.ts")), {
	compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
	fileName: "client.ts",
}).outputText;

mkdirSync(OUT, { recursive: true });
writeFileSync(join(OUT, "index.d.ts"), dts);
writeFileSync(join(OUT, "index.js"), js);

// What the client reads at run time must be what the document declares, name for name and type for type.
const { DECLARED_HEADERS } = await import(pathToFileURL(join(OUT, "index.js")).href);
const want = Object.fromEntries([...headerTypes].sort());
const have = Object.fromEntries(Object.entries(DECLARED_HEADERS).sort());
if (JSON.stringify(want) !== JSON.stringify(have)) {
	console.error(
		`[build:client] src/client.ts DECLARED_HEADERS disagrees with the document's response headers:\n  document: ${JSON.stringify(want)}\n  client:   ${JSON.stringify(have)}`,
	);
	process.exit(1);
}
console.log(
	`[build:client] dist/client/index.d.ts (${(dts.length / 1024).toFixed(0)} KiB, ${locals.size} local type(s), ` +
		`${operations.length} operations' response headers from the document) and index.js`,
);
