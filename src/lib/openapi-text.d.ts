/**
 * Whether the OpenAPI document's texts (operation summaries and descriptions, field and response
 * descriptions) are compiled in. They are read only where the document is built, in Node
 * (scripts/vendor-docs.mjs defines it true); the Worker bundle (wrangler.toml [define]) and the tests
 * (test/vitest.config.ts) define it false, so esbuild drops every `OPENAPI_TEXT ? "…" : undefined`
 * text from what ships: about 4.7 KiB gzip nothing at run time reads.
 */
declare const OPENAPI_TEXT: boolean;
