import { eq, type SQL, sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { paymentOrders } from "../db/schema";
import { newId } from "../lib/ids";

/**
 * The payment-order rules, once: which status an order may move to from which, and the guarded
 * statements that apply them. Used by /api/payments/verify (services/payments.ts) and by the Razorpay
 * webhook planner (services/billing-sync.ts), so both paths converge to the same state in any order.
 */
export type PaymentOrder = typeof paymentOrders.$inferSelect;
type OrderStatus = PaymentOrder["status"];

/**
 * CREATED -> PAID | FAILED, FAILED -> PAID (a later successful attempt). PAID is final: an order is
 * never downgraded, and moving to the status it already has is a no-op.
 */
const ALLOWED_FROM = {
	PAID: ["CREATED", "FAILED"],
	FAILED: ["CREATED"],
} as const satisfies Partial<Record<OrderStatus, readonly OrderStatus[]>>;

/** Moves the order to `to` only if its current status allows it (a guarded UPDATE, safe to repeat). */
export function transitionOrder(orderId: string, to: keyof typeof ALLOWED_FROM, now: number): SQL {
	const from = sql.join(
		ALLOWED_FROM[to].map((s) => sql`${s}`),
		sql`, `,
	);
	return sql`UPDATE payment_orders SET status = ${to}, updated_at = ${now} WHERE id = ${orderId} AND status IN (${from})`;
}

interface PaymentSeen {
	organizationId: string;
	orderId: string;
	paymentId: string;
	amount: number | null;
	currency: string | null;
	now: number;
}

/**
 * Records a payment (one row per Razorpay payment id). /verify only adds a `verified` row the first
 * time; a webhook upserts `captured` or `failed`, and a captured payment never becomes failed.
 */
export function recordPayment(
	p: PaymentSeen & ({ source: "verify"; status: "verified" } | { source: "webhook"; status: "captured" | "failed" }),
): SQL {
	const onConflict =
		p.source === "verify"
			? sql`ON CONFLICT DO NOTHING`
			: sql`ON CONFLICT (razorpay_payment_id) DO UPDATE SET
				status = CASE WHEN payment_transactions.status = 'captured' THEN 'captured' ELSE excluded.status END,
				amount = coalesce(excluded.amount, payment_transactions.amount), updated_at = excluded.updated_at`;
	return sql`
		INSERT INTO payment_transactions (id, organization_id, payment_order_id, razorpay_payment_id, amount, currency, status, source, created_at, updated_at)
		VALUES (${newId("txn")}, ${p.organizationId}, ${p.orderId}, ${p.paymentId}, ${p.amount}, ${p.currency}, ${p.status}, ${p.source}, ${p.now}, ${p.now})
		${onConflict}`;
}

/** The order Razorpay knows by this id, in any organization (callers check the organization). */
export async function findOrderByRazorpayId(db: Database, razorpayOrderId: string): Promise<PaymentOrder | undefined> {
	const [row] = await db.select().from(paymentOrders).where(eq(paymentOrders.razorpayOrderId, razorpayOrderId));
	return row;
}
