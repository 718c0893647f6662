// The members of zod's `z` namespace the Worker uses (see ./index.ts); add one here before using it.
// Relative paths: zod's exports map does not expose these files.
export {
	array,
	boolean,
	discriminatedUnion,
	email,
	enum,
	literal,
	looseObject,
	null,
	number,
	object,
	preprocess,
	record,
	strictObject,
	string,
	union,
	unknown,
	url,
	ZodType,
} from "../../../node_modules/zod/v4/classic/schemas.js";
export * as coerce from "../../../node_modules/zod/v4/classic/coerce.js";
export { NEVER } from "../../../node_modules/zod/v4/core/index.js";
