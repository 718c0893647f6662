import {
	auditLogs,
	categories,
	orderItems,
	orderStatusHistory,
	orders,
	products,
	variants,
	webhookDeliveries,
	webhookEndpoints,
} from "../db/schema";
import { typedRow } from "../db/batch";
import { strip } from "../services/store/shared";
import { auditEntryView, deliveryView, endpointView, orderView } from "../services/views";

type Raw = Record<string, unknown>;

/**
 * One organization's rows of a table in keyset order: `keys` are the columns after organization_id of
 * an index that starts with it, the last one unique within the organization (`rowid` is every index's
 * implicit last column), so each chunk is one index range of at most `limit` rows at any depth.
 */
export interface KeysetTable {
	table: string;
	keys: readonly string[];
}

const ident = (name: string) => `"${name.replaceAll('"', "")}"`;

/**
 * The next `limit` rows (columns as stored) after `after` (the keys of the previous chunk's last row;
 * null from the start) and the position to continue from (null: the table is done). Two or three bound
 * parameters, whatever the chunk: far below D1's 100.
 */
export async function keysetChunk(
	client: D1Database,
	spec: KeysetTable,
	orgId: string,
	after: readonly unknown[] | null,
	limit: number,
): Promise<{ rows: Raw[]; next: unknown[] | null }> {
	const withRowid = spec.keys.includes("rowid");
	const keys = spec.keys.map((k) => (k === "rowid" ? "rowid" : ident(k)));
	const where = after ? ` AND (${keys.join(", ")}) > (${keys.map(() => "?").join(", ")})` : "";
	const { results } = await client
		.prepare(
			`SELECT ${withRowid ? "rowid AS _rowid, " : ""}* FROM ${ident(spec.table)} WHERE organization_id = ?${where} ORDER BY ${keys.join(", ")} LIMIT ?`,
		)
		.bind(orgId, ...(after ?? []), limit)
		.all<Raw>();
	const last = results[results.length - 1];
	const next = results.length === limit && last ? spec.keys.map((k) => last[k === "rowid" ? "_rowid" : k]) : null;
	const rows = withRowid ? results.map(({ _rowid: _, ...row }) => row) : results;
	return { rows, next };
}

/** One line of an operator export: the record's type and its JSON (see API.md, GET /api/admin/orgs/:orgId/export). */
export interface ExportRecord {
	type: string;
	data: unknown;
	/** A delivery's endpoint: the API lists deliveries under their endpoint, so its JSON does not name it. */
	endpointId?: string;
}

const PAGE = 200;
/** Orders per page: their items and history are read with one `IN (…)` each (≤ 100 bound parameters). */
const ORDER_PAGE = 90;

/** Every row of one keyset table, a page at a time, each page mapped to records. */
export async function* paged(
	client: D1Database,
	spec: KeysetTable,
	orgId: string,
	toRecords: (rows: Raw[]) => ExportRecord[] | Promise<ExportRecord[]>,
	limit = PAGE,
): AsyncGenerator<ExportRecord[]> {
	let after: unknown[] | null = null;
	do {
		const chunk = await keysetChunk(client, spec, orgId, after, limit);
		if (chunk.rows.length > 0) yield await toRecords(chunk.rows);
		after = chunk.next;
	} while (after);
}

/** Rows of `table` whose `column` is one of `ids` (order_items / order_status_history of a page of orders). */
async function byOrder(client: D1Database, table: string, orgId: string, ids: string[], orderBy: string): Promise<Raw[]> {
	if (ids.length === 0) return [];
	const { results } = await client
		.prepare(`SELECT * FROM ${table} WHERE organization_id = ? AND order_id IN (${ids.map(() => "?").join(", ")}) ORDER BY ${orderBy}`)
		.bind(orgId, ...ids)
		.all<Raw>();
	return results;
}

/** Rows as records of `type`, their stored columns as `data`. */
export const stored = (type: string) => (rows: Raw[]) => rows.map((data) => ({ type, data }));

/**
 * Every record of a tenant's own data, as the operator export writes it: the catalogue, orders (with
 * their items and status history, as GET …/orders/:orderId answers), the audit chain, outgoing webhook
 * endpoints (never their secret) and deliveries as the API renders them; the audit checkpoint,
 * idempotency keys and, with `outbox`, events waiting in the store's outbox as their stored columns.
 * `client` is the tenant's store database, or D1 for a tenant still on the shared tables.
 */
export async function* storeRecords(client: D1Database, orgId: string, opts: { outbox: boolean }): AsyncGenerator<ExportRecord[]> {
	yield* paged(client, { table: "categories", keys: ["created_at", "id"] }, orgId, (rows) =>
		rows.map((r) => ({ type: "category", data: strip(typedRow(categories, r)) })),
	);
	yield* paged(client, { table: "products", keys: ["created_at", "id"] }, orgId, (rows) =>
		rows.map((r) => ({ type: "product", data: strip(typedRow(products, r)) })),
	);
	yield* paged(client, { table: "variants", keys: ["sku"] }, orgId, (rows) =>
		rows.map((r) => ({ type: "variant", data: strip(typedRow(variants, r)) })),
	);
	yield* paged(
		client,
		{ table: "orders", keys: ["created_at", "id"] },
		orgId,
		async (rows) => {
			const ids = rows.map((r) => String(r.id));
			const items = (await byOrder(client, "order_items", orgId, ids, "id")).map((r) => typedRow(orderItems, r));
			const history = (await byOrder(client, "order_status_history", orgId, ids, "at, id")).map((r) => typedRow(orderStatusHistory, r));
			return rows.map((r) => {
				const order = typedRow(orders, r);
				const detail = { ...order, items: items.filter((i) => i.orderId === order.id), history: history.filter((h) => h.orderId === order.id) };
				return { type: "order", data: orderView(detail) };
			});
		},
		ORDER_PAGE,
	);
	yield* paged(client, { table: "audit_logs", keys: ["seq"] }, orgId, (rows) =>
		rows.map((r) => ({ type: "audit_entry", data: auditEntryView(typedRow(auditLogs, r)) })),
	);
	yield* paged(client, { table: "audit_checkpoints", keys: ["rowid"] }, orgId, stored("audit_checkpoint"));
	yield* paged(client, { table: "webhook_endpoints", keys: ["created_at", "id"] }, orgId, (rows) =>
		rows.map((r) => ({ type: "webhook_endpoint", data: endpointView(typedRow(webhookEndpoints, r)) })),
	);
	yield* paged(client, { table: "webhook_deliveries", keys: ["endpoint_id", "created_at", "id"] }, orgId, (rows) =>
		rows.map((r) => {
			const d = typedRow(webhookDeliveries, r);
			return { type: "webhook_delivery", data: deliveryView(d), endpointId: d.endpointId };
		}),
	);
	yield* paged(client, { table: "idempotency_keys", keys: ["key"] }, orgId, stored("idempotency_key"));
	if (opts.outbox) yield* paged(client, { table: "outbox", keys: ["rowid"] }, orgId, stored("outbox_event"));
}

const encoder = new TextEncoder();

/** NDJSON of records: one `{"type", "data"}` object a line. */
const ndjsonLines = (records: readonly ExportRecord[]): Uint8Array =>
	encoder.encode(records.map((r) => `${JSON.stringify(r)}\n`).join(""));

/**
 * A byte stream of the records `source` yields, pulled a page at a time (nothing is held beyond one
 * page); an error while reading ends the stream with that error, so a reader sees it truncated.
 */
export function recordStream(source: AsyncIterator<ExportRecord[]>): ReadableStream<Uint8Array> {
	return new ReadableStream<Uint8Array>({
		async pull(controller) {
			try {
				for (;;) {
					const next = await source.next();
					if (next.done) {
						controller.close();
						return;
					}
					if (next.value.length > 0) {
						controller.enqueue(ndjsonLines(next.value));
						return;
					}
				}
			} catch (err) {
				controller.error(err);
			}
		},
		async cancel() {
			await source.return?.(undefined);
		},
	});
}
