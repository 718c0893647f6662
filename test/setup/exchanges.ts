import { afterAll } from "vitest";
import { takeExchanges } from "../helpers/exchanges";

// The file's exchanges with the Worker go to Node on the file's task meta (read by scripts/exchange-reporter.mjs),
// for the OpenAPI exchange check (npm run check:exchanges).
// vitest reads a hook's first parameter as a fixture list and requires a destructuring pattern: `{}` takes none.
// eslint-disable-next-line no-empty-pattern
afterAll(({}, file) => {
	file.meta.exchanges = [...(file.meta.exchanges ?? []), ...takeExchanges()];
});
