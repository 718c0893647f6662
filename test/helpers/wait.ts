/**
 * Polls `read` until `ok` holds or the deadline passes, then returns the last value (the caller's
 * expect reports the mismatch). For work that crosses a real queue, where nothing can be awaited.
 */
export async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 6_000): Promise<T> {
	const deadline = Date.now() + timeoutMs;
	let v = await read();
	while (!ok(v) && Date.now() < deadline) {
		await new Promise((r) => setTimeout(r, 50));
		v = await read();
	}
	return v;
}
