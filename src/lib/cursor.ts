import { ApiError } from "../errors";

/** Keyset cursor over (sort value, id), opaque to clients (base64url JSON). */
export interface Cursor {
	k: number;
	id: string;
}

export function encodeCursor(c: Cursor): string {
	return btoa(JSON.stringify([c.k, c.id]))
		.replaceAll("+", "-")
		.replaceAll("/", "_")
		.replaceAll("=", "");
}

export function decodeCursor(raw: string | undefined): Cursor | null {
	if (!raw) return null;
	try {
		const json = atob(raw.replaceAll("-", "+").replaceAll("_", "/"));
		const [k, id] = JSON.parse(json) as unknown[];
		if (typeof k === "number" && Number.isFinite(k) && typeof id === "string") return { k, id };
	} catch {
		// fall through
	}
	throw new ApiError("VALIDATION_FAILED", "cursor is not valid", {
		errors: [{ path: "cursor", message: "not a cursor returned by this API" }],
	});
}

/** Takes limit+1 rows; returns the page and the cursor of its last row when more remain. */
export function page<T>(rows: T[], limit: number, key: (row: T) => Cursor): { data: T[]; nextCursor: string | null } {
	const data = rows.slice(0, limit);
	const last = data[data.length - 1];
	return { data, nextCursor: rows.length > limit && last ? encodeCursor(key(last)) : null };
}
