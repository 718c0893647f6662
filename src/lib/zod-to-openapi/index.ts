/**
 * "@asteasolutions/zod-to-openapi" as the Worker bundle sees it: wrangler.toml's [alias] points the bare
 * specifier here, and so does the test configuration (test/vitest.config.ts), so the tests run what ships.
 * The type checker still reads the package's own types.
 *
 * Why: @hono/zod-openapi imports the library's route registry and `.openapi()` metadata (used to register
 * and validate routes) and its document generators (`getOpenAPI31Document()`), and a bundler must keep
 * every class it imports: the generators are ~7.6 KiB gzip of a Worker that never runs them. The API
 * document is generated at build time in Node with the real library (src/openapi-document.ts, written to
 * the static assets by scripts/vendor-docs.mjs); GET /api/openapi.json serves that file. Here the
 * registry and metadata are the library's own, and the generators throw.
 */
export { extendZodWithOpenApi, getOpenApiMetadata, OpenAPIRegistry } from "@asteasolutions/zod-to-openapi/dist/index.mjs";

class NoGenerator {
	constructor() {
		throw new Error("no OpenAPI generator in the Worker (scripts/vendor-docs.mjs builds the document)");
	}
}

export { NoGenerator as OpenApiGeneratorV3, NoGenerator as OpenApiGeneratorV31 };
