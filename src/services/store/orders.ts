import { and, asc, eq, inArray, type SQL, sql } from "drizzle-orm";
import { orderItems, orderStatusHistory, orders, products, variants } from "../../db/schema";
import { ApiError } from "../../errors";
import { newId } from "../../lib/ids";
import { type IdempotentCommit, storeResponse } from "../idempotency";
import { keysetPage, type PageQuery } from "../keyset-page";
import type { IfMatch } from "../../lib/etag";
import type { ChangeLog } from "../outbox";
import { Inventory } from "./inventory";
import { assertVersion, constraintError, TenantScope } from "./shared";

type Order = typeof orders.$inferSelect;
type OrderStatus = Order["status"];
type OrderDetail = Order & { items: (typeof orderItems.$inferSelect)[]; history: (typeof orderStatusHistory.$inferSelect)[] };

/**
 * The largest order total, in minor units: 50 lines x 1000 x 10^11 (the schemas' bounds on lines,
 * quantity and unit price), below Number.MAX_SAFE_INTEGER. Larger totals (rows priced before those
 * bounds) are refused.
 */
const MAX_ORDER_TOTAL_MINOR = 5_000_000_000_000_000;

/** Allowed order status transitions; cancelling a pending or paid order puts its stock back. */
const ORDER_TRANSITIONS: Record<OrderStatus, OrderStatus[]> = {
	pending: ["paid", "cancelled"],
	paid: ["fulfilled", "cancelled"],
	fulfilled: [],
	cancelled: [],
};

/** Orders of one organization: created from catalogue data, moved along ORDER_TRANSITIONS. */
export class Orders extends TenantScope {
	private readonly inventory = new Inventory(this.db, this.organizationId);

	listOrders(q: PageQuery & { status?: OrderStatus }) {
		return keysetPage(
			this.db,
			orders,
			"createdAt",
			"asc",
			and(this.own(orders), q.status ? eq(orders.status, q.status) : undefined),
			q,
		);
	}

	async getOrder(id: string): Promise<OrderDetail> {
		const [orderRows, items, history] = await this.db.batch([
			this.db
				.select()
				.from(orders)
				.where(and(this.own(orders), eq(orders.id, id))),
			this.db
				.select()
				.from(orderItems)
				.where(and(this.own(orderItems), eq(orderItems.orderId, id)))
				.orderBy(asc(orderItems.id)),
			this.db
				.select()
				.from(orderStatusHistory)
				.where(and(this.own(orderStatusHistory), eq(orderStatusHistory.orderId, id)))
				.orderBy(asc(orderStatusHistory.at), asc(orderStatusHistory.id)),
		]);
		const order = orderRows[0];
		if (!order) throw new ApiError("NOT_FOUND", "order not found");
		return { ...order, items, history };
	}

	/**
	 * Creates an order from current catalogue data: each item copies the product's (or variant's)
	 * name, sku and price at this moment, stock is taken in the same atomic batch (409 if short), with the
	 * `order.created` audit entry and outgoing event.
	 */
	async createOrder(
		input: { items: { productId: string; variantId?: string; quantity: number }[]; customerEmail?: string | null },
		userId: string,
		log: ChangeLog,
		commit?: IdempotentCommit<OrderDetail>,
	): Promise<OrderDetail> {
		// Merge repeated lines so stock is checked on the total.
		const lines = new Map<string, { productId: string; variantId?: string; quantity: number }>();
		for (const it of input.items) {
			const k = `${it.productId}|${it.variantId ?? ""}`;
			const prev = lines.get(k);
			lines.set(k, { ...it, quantity: (prev?.quantity ?? 0) + it.quantity });
		}
		const wanted = [...lines.values()];
		const productIds = [...new Set(wanted.map((l) => l.productId))];
		const variantIds = [...new Set(wanted.flatMap((l) => (l.variantId ? [l.variantId] : [])))];
		const [found, foundVariants] = await this.db.batch([
			this.db
				.select()
				.from(products)
				.where(and(this.own(products), inArray(products.id, productIds))),
			this.db
				.select()
				.from(variants)
				.where(and(this.own(variants), inArray(variants.id, variantIds.length ? variantIds : ["-"]))),
		]);
		const byId = new Map(found.map((p) => [p.id, p]));
		const variantById = new Map(foundVariants.map((v) => [v.id, v]));
		const errors: { path: string; message: string }[] = [];
		input.items.forEach((it, i) => {
			const p = byId.get(it.productId);
			if (!p) errors.push({ path: `items.${i}.productId`, message: "no such product" });
			else if (p.status !== "active") errors.push({ path: `items.${i}.productId`, message: `product is ${p.status}` });
			if (it.variantId) {
				const v = variantById.get(it.variantId);
				if (!v || v.productId !== it.productId)
					errors.push({ path: `items.${i}.variantId`, message: "no such variant of this product" });
			}
		});
		const currencies = new Set(found.map((p) => p.currency));
		if (errors.length === 0 && currencies.size > 1) errors.push({ path: "items", message: "all items must share one currency" });
		if (errors.length > 0) {
			throw new ApiError("VALIDATION_FAILED", errors.map((e) => `${e.path}: ${e.message}`).join("; "), { errors });
		}

		const now = Date.now();
		const orderId = newId("ord");
		const items = wanted
			.map((l) => {
				const p = byId.get(l.productId)!;
				const v = l.variantId ? variantById.get(l.variantId)! : undefined;
				const unit = v?.priceMinor ?? p.priceMinor;
				return {
					id: newId("itm"),
					organizationId: this.organizationId,
					orderId,
					productId: p.id,
					variantId: v?.id ?? null,
					name: v ? `${p.name} (${v.name})` : p.name,
					sku: v?.sku ?? p.sku,
					unitPriceMinor: unit,
					quantity: l.quantity,
					lineTotalMinor: BigInt(unit) * BigInt(l.quantity),
				};
			})
			.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
		// Exact integer arithmetic: the schemas bound prices and quantities so that a total fits, but rows
		// priced before those bounds may not.
		const total = items.reduce((sum, it) => sum + it.lineTotalMinor, 0n);
		if (total > BigInt(MAX_ORDER_TOTAL_MINOR)) {
			throw new ApiError("VALIDATION_FAILED", `items: the order total exceeds ${MAX_ORDER_TOTAL_MINOR} minor units`, {
				errors: [{ path: "items", message: `the order total exceeds ${MAX_ORDER_TOTAL_MINOR} minor units` }],
			});
		}
		const order = {
			id: orderId,
			organizationId: this.organizationId,
			status: "pending" as const,
			currency: found[0]!.currency,
			totalMinor: Number(total),
			customerEmail: input.customerEmail ?? null,
			createdBy: userId,
			version: 1,
			createdAt: now,
			updatedAt: now,
		};
		const history = {
			id: newId("osh"),
			organizationId: this.organizationId,
			orderId,
			fromStatus: null,
			toStatus: "pending" as const,
			changedBy: userId,
			note: null,
			at: now,
		};
		const summary = { orderId, status: order.status, totalMinor: order.totalMinor, currency: order.currency };
		const created = {
			...order,
			items: items.map((it) => ({ ...it, lineTotalMinor: Number(it.lineTotalMinor) })),
			history: [history],
		};
		// One atomic batch whose statements stay within D1's 100 bound parameters whatever the number of
		// lines: the items and the stock changes are bound as one JSON parameter each.
		const statements: SQL[] = [
			this.db.insert(orders).values(order).getSQL(),
			sql`INSERT INTO order_items (id, organization_id, order_id, product_id, variant_id, name, sku, unit_price_minor, quantity, line_total_minor)
				SELECT json_extract(value, '$.id'), ${this.organizationId}, ${orderId}, json_extract(value, '$.productId'),
					json_extract(value, '$.variantId'), json_extract(value, '$.name'), json_extract(value, '$.sku'),
					json_extract(value, '$.unitPriceMinor'), json_extract(value, '$.quantity'), json_extract(value, '$.lineTotalMinor')
				FROM json_each(${JSON.stringify(created.items)})`,
			this.db.insert(orderStatusHistory).values(history).getSQL(),
			...this.inventory.takeStatements(wanted),
			...this.outboxStatements(log, {
				action: "order.created",
				targetType: "order",
				targetId: orderId,
				after: summary,
				event: { type: "order.created", data: summary },
			}),
		];
		if (commit) statements.push(storeResponse(this.db, commit.claim, commit.status, JSON.stringify(commit.render(created))).getSQL());
		try {
			await this.commitBatch(statements, log);
		} catch (err) {
			constraintError(err, { check: "insufficient stock for one or more items" });
		}
		return created;
	}

	/**
	 * Moves an order along ORDER_TRANSITIONS. The status update is guarded by the status (and version)
	 * it was read with, and the history row and any restock only happen if that update won, all in
	 * one atomic batch: two concurrent transitions cannot both apply. Its `order.status_changed` audit entry
	 * and outgoing event are written in the batch too, under the same guard.
	 */
	async transitionOrder(
		id: string,
		to: OrderStatus,
		userId: string,
		log: ChangeLog,
		note?: string,
		ifMatch?: IfMatch,
		commit?: IdempotentCommit<OrderDetail>,
	): Promise<OrderDetail> {
		const order = await this.getOrder(id);
		assertVersion(order, ifMatch, "order");
		if (!ORDER_TRANSITIONS[order.status].includes(to)) {
			throw new ApiError("CONFLICT", `cannot move an order from ${order.status} to ${to}`);
		}
		const now = Date.now();
		const entry = {
			id: newId("osh"),
			organizationId: this.organizationId,
			orderId: id,
			fromStatus: order.status,
			toStatus: to,
			changedBy: userId,
			note: note ?? null,
			at: now,
		};
		// The order as getOrder will read it once this transition applies (history by (at, id)).
		const moved: OrderDetail = {
			...order,
			status: to,
			version: order.version + 1,
			updatedAt: now,
			history: [...order.history, entry].sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
		};
		// Every statement is guarded by the state this transition was read from, and the order's own
		// UPDATE runs last: inside the batch's transaction either all of them see that state and apply,
		// or another transition got there first and none does. (A guard on the resulting state would not
		// do: two racing transitions to the same status produce the same result.)
		const unchanged = sql`EXISTS (SELECT 1 FROM orders WHERE id = ${id} AND organization_id = ${this.organizationId}
			AND status = ${order.status} AND version = ${order.version})`;
		const statements: SQL[] = [
			sql`INSERT INTO order_status_history (id, organization_id, order_id, from_status, to_status, changed_by, note, at)
				SELECT ${entry.id}, ${this.organizationId}, ${id}, ${order.status}, ${to}, ${userId}, ${entry.note}, ${now} WHERE ${unchanged}`,
		];
		if (to === "cancelled") statements.push(...this.inventory.restockStatements(order.items, unchanged));
		statements.push(
			...this.outboxStatements(
				log,
				{
					action: "order.status_changed",
					targetType: "order",
					targetId: id,
					before: { status: order.status },
					after: { status: to, note: note ?? null },
					event: { type: "order.status_changed", data: { orderId: id, from: order.status, to } },
				},
				{ when: unchanged },
			),
		);
		// The Idempotency-Key's response, stored only if this transition applies.
		if (commit) {
			const body = JSON.stringify(commit.render(moved));
			statements.push(storeResponse(this.db, commit.claim, commit.status, body, unchanged).getSQL());
		}
		statements.push(
			sql`UPDATE orders SET status = ${to}, version = ${order.version + 1}, updated_at = ${now}
				WHERE id = ${id} AND organization_id = ${this.organizationId} AND status = ${order.status} AND version = ${order.version}`,
		);
		let results: D1Result[];
		try {
			results = await this.commitBatch(statements, log);
		} catch (err) {
			constraintError(err, {});
		}
		const update = results[results.length - 1];
		if (!update || update.meta.changes === 0) {
			throw new ApiError("CONFLICT", "the order changed concurrently; read it again and retry");
		}
		return moved;
	}
}
