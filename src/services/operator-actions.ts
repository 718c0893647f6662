import { and, desc, eq } from "drizzle-orm";
import type { Database } from "../db/client";
import { keysetAfter } from "../db/keyset";
import { operatorActions } from "../db/schema";
import { decodeCursor, page } from "../lib/cursor";
import { newId } from "../lib/ids";

/** The operator routes that change something, or read a tenant's data out, by the action each records. */
const NAMED: Record<string, string> = {
	"PATCH /api/admin/orgs/:orgId": "org.updated",
	"DELETE /api/admin/orgs/:orgId": "org.deleted",
	"GET /api/admin/orgs/:orgId/export": "org.exported",
	"POST /api/admin/events/:svixId/replay": "event.replayed",
	"POST /api/admin/outbox/:id/replay": "outbox.replayed",
};

/**
 * The action an operator request records: its name above; any other write under /api/admin (a route
 * added later) as "<METHOD> <route>", so none goes unrecorded; undefined for the other reads.
 */
export function operatorAction(method: string, routePath: string): string | undefined {
	return NAMED[`${method} ${routePath}`] ?? (method === "GET" || method === "HEAD" ? undefined : `${method} ${routePath}`);
}

export interface OperatorActionInput {
	operatorId: string;
	action: string;
	organizationId: string | null;
	targetId: string | null;
	detail: unknown;
	status: number;
	requestId: string;
}

export async function recordOperatorAction(db: Database, entry: OperatorActionInput, now = Date.now()): Promise<void> {
	await db.insert(operatorActions).values({
		...entry,
		id: newId("opa"),
		at: now,
		detail: entry.detail === undefined ? null : JSON.stringify(entry.detail),
	});
}

/** GET /api/admin/actions: newest first, keyset-paginated; `organizationId` narrows to one tenant. */
export async function listOperatorActions(db: Database, q: { organizationId?: string; cursor?: string; limit: number }) {
	const rows = await db
		.select()
		.from(operatorActions)
		.where(
			and(
				q.organizationId ? eq(operatorActions.organizationId, q.organizationId) : undefined,
				keysetAfter(operatorActions.at, operatorActions.id, decodeCursor(q.cursor), "desc"),
			),
		)
		.orderBy(desc(operatorActions.at), desc(operatorActions.id))
		.limit(q.limit + 1);
	const { data, nextCursor } = page(rows, q.limit, (r) => ({ k: r.at, id: r.id }));
	return { data: data.map(({ detail, ...r }) => ({ ...r, detail: detail === null ? null : (JSON.parse(detail) as unknown) })), nextCursor };
}
