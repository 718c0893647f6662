/** Strong ETag from a row version. */
export const etag = (version: number) => `"${version}"`;

/**
 * The row versions an If-Match precondition accepts (RFC 9110 §13.1.1): undefined when there is none
 * or it is "*" (the write is unconditional); otherwise the versions its entity tags name, one or a
 * comma-separated list (`"3", "4"`, at most 20 versions: a longer one fails closed), the write applying
 * while the row is at any of them. A tag that is
 * not one of ours (`"abc"`) matches nothing, and a header that is not a list of entity tags names no
 * version at all (`[]`): a malformed precondition fails closed with 412. A weak tag (`W/"3"`) is compared
 * like its strong form, because Cloudflare weakens the ETags of the answers it compresses: a client
 * behind it gets back `W/"3"` for the `"3"` this API sent.
 */
export type IfMatch = readonly number[] | undefined;

const ENTITY_TAG = /\s*(?:W\/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*(?:,|$)/y;

/** Versions an If-Match list may name at most (each is bound twice in the conditional write: D1 binds 100). */
const MAX_TAGS = 20;

export function ifMatchVersions(header: string | undefined): IfMatch {
	if (header === undefined || header.trim() === "*") return undefined;
	const versions = new Set<number>();
	ENTITY_TAG.lastIndex = 0;
	while (ENTITY_TAG.lastIndex < header.length) {
		const m = ENTITY_TAG.exec(header);
		// Not an entity tag where one should be (or a list ending in a comma): no version.
		if (!m || (m[0].endsWith(",") && ENTITY_TAG.lastIndex >= header.length)) return [];
		if (/^\d{1,15}$/.test(m[1] as string)) versions.add(Number(m[1]));
	}
	// Past MAX_TAGS versions the list names none we would test: it fails closed (412).
	return versions.size > MAX_TAGS ? [] : [...versions];
}

/** Whether a row at `version` meets the precondition. */
export const matches = (ifMatch: IfMatch, version: number) => ifMatch === undefined || ifMatch.includes(version);
