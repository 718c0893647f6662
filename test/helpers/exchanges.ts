import { expect } from "vitest";

/**
 * Every request a test sends to the Worker through the request helpers (request.ts) and the answer it got,
 * kept for the OpenAPI exchange check: at the end of each test file test/setup/exchanges.ts hands them to
 * Node on the file's task meta, scripts/exchange-reporter.mjs writes them to dist/exchanges.json, and
 * `npm run check:exchanges` (scripts/check-exchanges.mjs) validates each one against the served document
 * with openapi-backend.
 */
export interface Exchange {
	/** The test that sent it ("(hook)" for beforeAll/afterAll work). */
	test: string;
	method: string;
	/** Path and query string, as sent. */
	url: string;
	requestHeaders: Record<string, string>;
	/** The raw request body; absent when none was sent or when it was over BODY_CAP (requestLength says how long). */
	requestBody?: string;
	/** The request body's length in characters (0 without one). */
	requestLength: number;
	status: number;
	responseHeaders: Record<string, string>;
	/** The raw response body; absent when empty or when it was over BODY_CAP (responseLength says how long it was). */
	responseBody?: string;
	/** The response body's length in characters. */
	responseLength: number;
}

declare module "vitest" {
	interface TaskMeta {
		exchanges?: Exchange[];
	}
}

/** Bodies above this are not kept (the served document, ~0.8 MB, is fetched by several tests; body-cap tests send more). */
const BODY_CAP = 256 * 1024;

const recorded: Exchange[] = [];

/** Records one exchange: the request as it was sent (call before sending, on a clone) and the answer's text. */
export async function recordExchange(sent: Request, res: { status: number; headers: Headers; text: string }): Promise<void> {
	const url = new URL(sent.url);
	const requestBody = sent.body === null ? undefined : await sent.text();
	recorded.push({
		test: expect.getState().currentTestName ?? "(hook)",
		method: sent.method,
		url: url.pathname + url.search,
		requestHeaders: Object.fromEntries(sent.headers),
		...(requestBody !== undefined && requestBody.length <= BODY_CAP ? { requestBody } : {}),
		requestLength: requestBody?.length ?? 0,
		status: res.status,
		responseHeaders: Object.fromEntries(res.headers),
		...(res.text && res.text.length <= BODY_CAP ? { responseBody: res.text } : {}),
		responseLength: res.text.length,
	});
}

/** The exchanges recorded since the last call, removed from the list. */
export const takeExchanges = (): Exchange[] => recorded.splice(0);
