import * as z from "./external";

/**
 * "zod" as the Worker bundle sees it: wrangler.toml's [alias] points the bare specifier here, and so
 * does the test configuration (test/vitest.config.ts), so the tests run what ships. The type checker
 * still reads the package's own types.
 *
 * Why: @hono/zod-openapi hands the whole `z` namespace to extendZodWithOpenApi, so a bundler must keep
 * every member of it: 40-odd locales (~360 KiB), the JIT compiler, fromJSONSchema, every string format.
 * This namespace holds only the members src/ uses (external.ts) plus ZodType, the one that
 * @asteasolutions/zod-to-openapi touches. Schema methods (.optional(), .pipe(), .openapi() …) live on
 * the classes and are unaffected. Messages stay English: zod registers its en locale with the first schema.
 * A member missing here is `undefined` at run time (`z.x is not a function`): add it to external.ts.
 */
export * from "./external";
export { z, z as default };
