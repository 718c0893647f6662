/** Strong ETag from a row version. */
export const etag = (version: number) => `"${version}"`;

/**
 * The version an If-Match header asks for: undefined when absent or "*", -1 (never matches) when it
 * names no version of ours, so a malformed precondition fails closed with 412.
 */
export function ifMatchVersion(header: string | undefined): number | undefined {
	if (header === undefined || header.trim() === "*") return undefined;
	const m = /^\s*(?:W\/)?"(\d{1,15})"\s*$/.exec(header);
	return m ? Number(m[1]) : -1;
}
