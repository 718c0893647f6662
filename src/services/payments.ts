import { and, eq, or, sql } from "drizzle-orm";
import { runBatch } from "../db/batch";
import { paymentOrders } from "../db/schema";
import type { Config } from "../env";
import { ApiError } from "../errors";
import { newId } from "../lib/ids";
import type { BillingDeps } from "./billing";
import { changeOutbox, publishChange } from "./events-bus";
import { type ChangeLog, collectOutbox } from "./outbox";
import { findOrderByRazorpayId, type PaymentOrder, recordPayment, transitionOrder } from "./payment-orders";
import { createRazorpayOrder, MAX_ORDER_AMOUNT, verifyPaymentSignature } from "./razorpay";

/** The permission that lets a member act on any payment order of the organization, not only their own. */
export const BILLING_MANAGE = "org:billing:manage";

/** Shaped like Razorpay's order (id = Razorpay's order id, for Checkout), plus our own id and state; the operator export too. */
export function paymentOrderView(o: PaymentOrder, keyId: string) {
	return {
		id: o.razorpayOrderId,
		entity: "order" as const,
		paymentOrderId: o.id,
		razorpayOrderId: o.razorpayOrderId,
		amount: o.amount,
		currency: o.currency,
		receipt: o.receipt,
		status: o.status,
		keyId,
		createdAt: o.createdAt,
	};
}

function razorpayConfig(config: Pick<Config, "RAZORPAY_KEY_ID" | "RAZORPAY_KEY_SECRET" | "RAZORPAY_API_BASE">) {
	if (!config.RAZORPAY_KEY_ID || !config.RAZORPAY_KEY_SECRET) {
		throw new ApiError("BAD_ENVIRONMENT", "RAZORPAY_KEY_ID and RAZORPAY_KEY_SECRET must be configured");
	}
	return { keyId: config.RAZORPAY_KEY_ID, keySecret: config.RAZORPAY_KEY_SECRET, apiBase: config.RAZORPAY_API_BASE };
}

/**
 * Creates the order at Razorpay, then stores it CREATED for the organization, with its
 * `payment_order.created` audit entry in the same batch (to be relayed: `log`).
 */
export async function createPaymentOrder(
	deps: BillingDeps,
	organizationId: string,
	userId: string,
	input: { amount: number; currency: string; receipt?: string; notes?: Record<string, string> },
	log: ChangeLog,
) {
	const creds = razorpayConfig(deps.config);
	if (!Number.isSafeInteger(input.amount) || input.amount < 1 || input.amount > MAX_ORDER_AMOUNT) {
		throw new ApiError("BAD_REQUEST", `amount must be an integer between 1 and ${MAX_ORDER_AMOUNT}`);
	}
	const id = newId("pord");
	const receipt = input.receipt ?? id.slice(0, 40);
	const order = await createRazorpayOrder(creds, {
		amount: input.amount,
		currency: input.currency,
		receipt,
		notes: { ...input.notes, organization_id: organizationId },
	});
	// What is stored is what was asked for; Razorpay must have created exactly that order.
	if (order.amount !== input.amount || order.currency !== input.currency) {
		deps.logger.error("Razorpay created an order that differs from the request", {
			razorpayOrderId: order.id,
			asked: { amount: input.amount, currency: input.currency },
			got: { amount: order.amount, currency: order.currency },
		});
		throw new ApiError("UPSTREAM_UNAVAILABLE", "Razorpay answered an order that differs from the request");
	}
	const now = Date.now();
	const row: PaymentOrder = {
		id,
		organizationId,
		razorpayOrderId: order.id,
		amount: input.amount,
		currency: input.currency,
		receipt,
		status: "CREATED",
		createdBy: userId,
		createdAt: now,
		updatedAt: now,
	};
	const created = paymentOrderView(row, creds.keyId);
	const results = await runBatch(deps.db.$client, [
		deps.db.insert(paymentOrders).values(row).getSQL(),
		...changeOutbox(log, {
			organizationId,
			action: "payment_order.created",
			targetType: "payment_order",
			targetId: id,
			after: created,
		}),
	]);
	collectOutbox(log, results);
	return created;
}

/** An order of the organization, by our id or Razorpay's. */
export async function getPaymentOrder(deps: Pick<BillingDeps, "db" | "config">, organizationId: string, id: string) {
	const { keyId } = razorpayConfig(deps.config);
	const [row] = await deps.db
		.select()
		.from(paymentOrders)
		.where(
			and(
				eq(paymentOrders.organizationId, organizationId),
				or(eq(paymentOrders.id, id), eq(paymentOrders.razorpayOrderId, id)),
			),
		);
	if (!row) throw new ApiError("NOT_FOUND", "payment order not found");
	return paymentOrderView(row, keyId);
}

/**
 * Checks Razorpay Checkout's signature against the order id we stored. Only the order's creator or a
 * member with org:billing:manage may verify; for anyone else the order does not exist (404, as for an
 * unknown or foreign order, so its existence is not revealed).
 *
 * Valid: the payment is recorded and the order moves to PAID. Not valid: 400, an audit entry
 * (payment.verification_failed) and the order is left exactly as it was, so a junk signature cannot
 * fail someone's order.
 *
 * Amount and currency: Checkout hands the client only the ids and the signature, and the signature
 * (HMAC of `<order id>|<payment id>` with the key secret) covers exactly those two, so what is
 * cross-checked here is that the payment belongs to *this* stored order (we sign our stored Razorpay
 * order id, never the client's). Razorpay captures an order-bound payment only for the order's amount
 * and currency; the amount and currency actually captured are cross-checked on the payment.captured /
 * order.paid webhook (services/billing-sync.ts).
 */
export async function verifyPayment(
	deps: BillingDeps,
	caller: { organizationId: string; userId: string; permissions: readonly string[] },
	input: { razorpay_order_id: string; razorpay_payment_id: string; razorpay_signature: string },
	log: ChangeLog,
) {
	const { organizationId } = caller;
	const { keySecret } = razorpayConfig(deps.config);
	const paymentId = input.razorpay_payment_id;
	// Only this organization's orders, and only the creator's unless the caller manages billing.
	const order = await findOrderByRazorpayId(deps.db, input.razorpay_order_id);
	if (
		!order ||
		order.organizationId !== organizationId ||
		(order.createdBy !== caller.userId && !caller.permissions.includes(BILLING_MANAGE))
	) {
		throw new ApiError("NOT_FOUND", "payment order not found");
	}
	const audit = { organizationId, targetType: "payment_order", targetId: order.id };
	const now = Date.now();
	const valid = await verifyPaymentSignature(keySecret, order.razorpayOrderId, paymentId, input.razorpay_signature);
	if (!valid) {
		// No state change: anyone holding the order id could otherwise fail the order with a junk signature.
		// Nothing is written, so there is no batch for an outbox row: the entry is sent (parked in the outbox if refused).
		deps.logger.warn("payment signature mismatch", { orderId: order.id });
		await publishChange(deps.env, deps.meta, deps.logger, {
			...audit,
			action: "payment.verification_failed",
			after: { paymentId, status: order.status },
		});
		throw new ApiError("BAD_REQUEST", "payment signature is not valid for this order");
	}
	// The entry is written ahead of the payment and the transition, exactly when one of them applies
	// (a repeated verify changes nothing and is not audited again), with the status they found.
	const applies = sql`(NOT EXISTS (SELECT 1 FROM payment_transactions WHERE razorpay_payment_id = ${paymentId})
		OR EXISTS (SELECT 1 FROM payment_orders WHERE id = ${order.id} AND status <> 'PAID'))`;
	const results = await runBatch(deps.db.$client, [
		...changeOutbox(
			log,
			{ ...audit, action: "payment.verified", before: { status: order.status }, after: { status: "PAID", paymentId } },
			undefined,
			{ set: { "$.before.status": sql`(SELECT status FROM payment_orders WHERE id = ${order.id})` }, when: applies },
		),
		recordPayment({
			organizationId,
			orderId: order.id,
			paymentId,
			amount: order.amount,
			currency: order.currency,
			source: "verify",
			status: "verified",
			now,
		}),
		transitionOrder(order.id, "PAID", now),
	]);
	collectOutbox(log, results);
	return {
		status: "PAID" as const,
		orderId: order.razorpayOrderId,
		paymentOrderId: order.id,
		razorpayOrderId: order.razorpayOrderId,
		paymentId,
	};
}
