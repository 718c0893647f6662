// zod's JSON Schema generation as the Worker bundle sees it: wrangler.toml's [alias] (and the test
// configuration) point zod's classic/schemas.js imports of "../core/json-schema-processors.js" and
// "../core/to-json-schema.js" here (about 5.4 KiB gzip). Of what the Worker bundles, only those two imports use
// these exact relative paths (zod's classic/external.js and mini/external.js re-export toJSONSchema by one of them:
// exported here too, so importing "zod/v4" would still build).
// The Worker never converts a schema to JSON Schema: the API document is built in Node
// (src/openapi-document.ts) and served from the assets. So a schema's toJSONSchema(), its
// `~standard.jsonSchema` and the derived bounds (.minLength, .isInt …) throw here instead of running.
const unavailable = (): never => {
	throw new Error("zod's JSON Schema generation is not in the Worker bundle (src/lib/zod/no-json-schema.ts)");
};

export const createToJSONSchemaMethod = () => unavailable;
export const createStandardJSONSchemaMethod = () => unavailable;
export {
	unavailable as toJSONSchema,
	unavailable as aggregateChecks,
	unavailable as anyProcessor,
	unavailable as arrayProcessor,
	unavailable as bigintProcessor,
	unavailable as booleanProcessor,
	unavailable as catchProcessor,
	unavailable as customProcessor,
	unavailable as dateProcessor,
	unavailable as defaultProcessor,
	unavailable as enumProcessor,
	unavailable as fileProcessor,
	unavailable as functionProcessor,
	unavailable as intersectionProcessor,
	unavailable as lazyProcessor,
	unavailable as literalProcessor,
	unavailable as mapProcessor,
	unavailable as nanProcessor,
	unavailable as neverProcessor,
	unavailable as nonoptionalProcessor,
	unavailable as nullProcessor,
	unavailable as nullableProcessor,
	unavailable as numberProcessor,
	unavailable as objectProcessor,
	unavailable as optionalProcessor,
	unavailable as pipeProcessor,
	unavailable as prefaultProcessor,
	unavailable as promiseProcessor,
	unavailable as readonlyProcessor,
	unavailable as recordProcessor,
	unavailable as setProcessor,
	unavailable as stringProcessor,
	unavailable as successProcessor,
	unavailable as symbolProcessor,
	unavailable as templateLiteralProcessor,
	unavailable as transformProcessor,
	unavailable as tupleProcessor,
	unavailable as undefinedProcessor,
	unavailable as unionProcessor,
	unavailable as unknownProcessor,
	unavailable as voidProcessor,
};
