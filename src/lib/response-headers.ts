import type { Context } from "hono";

/**
 * Sets headers on the answer a handler already produced, in place. Hono's `c.header()` after the
 * handler copies the whole Response for every header it sets; a Response made in this Worker has
 * mutable headers, so this writes them directly, and copies the answer once (and only then) when its
 * headers are immutable (one passed through from fetch or RPC). `append` adds to a header's values.
 * @example setAnswerHeaders(c, { "X-Request-Id": requestId })
 */
export function setAnswerHeaders(c: Context, headers: Record<string, string>, opts: { append?: boolean } = {}): void {
	const write = (target: Headers) => {
		for (const [name, value] of Object.entries(headers)) {
			if (opts.append) target.append(name, value);
			else if (target.get(name) !== value) target.set(name, value);
		}
	};
	try {
		write(c.res.headers);
	} catch {
		const copy = new Response(c.res.body, c.res);
		write(copy.headers);
		c.res = copy;
	}
}
