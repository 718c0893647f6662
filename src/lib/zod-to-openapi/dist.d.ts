// The library's one ES module (./index.ts imports it by path so the [alias] does not apply to it again) has
// no declaration file of its own: it is the package's main module, typed by the package's declarations.
declare module "@asteasolutions/zod-to-openapi/dist/index.mjs" {
	export * from "@asteasolutions/zod-to-openapi";
}
