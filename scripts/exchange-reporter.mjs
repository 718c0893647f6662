// Vitest reporter (Node side of the test run): writes every exchange the tests had with the Worker to a JSON
// file for `npm run check:exchanges` (scripts/check-exchanges.mjs). The tests run in workerd, which cannot
// write files: test/helpers/exchanges.ts records each exchange and test/setup/exchanges.ts puts a file's
// exchanges on its task meta, which vitest hands to the reporters here.
//   file: $EXCHANGES_FILE, default dist/exchanges.json; shape { files: { "<test file>": Exchange[] } }
// Listed in test/vitest.config.ts; .ci/run names it next to its own --reporter flags (which replace the config's).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { ROOT } from "./lib.mjs";

export default class ExchangeReporter {
	onTestRunEnd(testModules) {
		const out = resolve(process.env.EXCHANGES_FILE || join(ROOT, "dist", "exchanges.json"));
		const files = {};
		let count = 0;
		for (const m of testModules) {
			const exchanges = m.meta().exchanges ?? [];
			if (exchanges.length === 0) continue;
			files[relative(ROOT, m.moduleId)] = exchanges;
			count += exchanges.length;
		}
		mkdirSync(dirname(out), { recursive: true });
		writeFileSync(out, `${JSON.stringify({ files })}\n`);
		console.log(`exchanges: ${count} from ${Object.keys(files).length} test files -> ${relative(ROOT, out)} (npm run check:exchanges)`);
	}
}
