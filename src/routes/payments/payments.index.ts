import { and, eq, sql } from "drizzle-orm";
import { createRouter } from "../../lib/create-app";
import { paymentOrders, paymentTransactions } from "../../db/schema";
import { ApiError } from "../../errors";
import { newId } from "../../lib/ids";
import { publishChange } from "../../services/events-bus";
import { createRazorpayOrder, verifyPaymentSignature } from "../../services/razorpay";
import { requestMeta } from "../../middleware/request-meta";
import * as routes from "./payments.routes";

type OrderRow = typeof paymentOrders.$inferSelect;
/** Shaped like Razorpay's order (id = Razorpay's order id, for Checkout), plus our own id and state. */
const view = (o: OrderRow, keyId: string) => ({
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
});

function razorpayConfig(config: { RAZORPAY_KEY_ID?: string; RAZORPAY_KEY_SECRET?: string }) {
	if (!config.RAZORPAY_KEY_ID || !config.RAZORPAY_KEY_SECRET) {
		throw new ApiError("BAD_ENVIRONMENT", "RAZORPAY_KEY_ID and RAZORPAY_KEY_SECRET must be configured");
	}
	return { keyId: config.RAZORPAY_KEY_ID, keySecret: config.RAZORPAY_KEY_SECRET };
}

export const paymentsRouter = createRouter()
	.openapi(routes.createOrder, async (c) => {
		const creds = razorpayConfig(c.get("config"));
		const orgId = c.get("access").organization.id;
		const input = c.req.valid("json");
		const id = newId("pord");
		const receipt = input.receipt ?? id.slice(0, 40);
		const order = await createRazorpayOrder(creds, {
			amount: input.amount,
			currency: input.currency,
			receipt,
			notes: { ...input.notes, organization_id: orgId },
		});
		const now = Date.now();
		const [row] = await c
			.get("db")
			.insert(paymentOrders)
			.values({
				id,
				organizationId: orgId,
				razorpayOrderId: order.id,
				amount: order.amount,
				currency: order.currency,
				receipt,
				status: "CREATED",
				createdBy: c.get("auth").userId,
				createdAt: now,
				updatedAt: now,
			})
			.returning();
		await publishChange(c.env, requestMeta(c), c.get("logger"), {
			organizationId: orgId,
			action: "payment_order.created",
			targetType: "payment_order",
			targetId: id,
			after: view(row!, creds.keyId),
		});
		return c.json(view(row!, creds.keyId), 201);
	})
	.openapi(routes.getOrder, async (c) => {
		const { keyId } = razorpayConfig(c.get("config"));
		const { id } = c.req.valid("param");
		const orgId = c.get("access").organization.id;
		const [row] = await c
			.get("db")
			.select()
			.from(paymentOrders)
			.where(
				and(
					eq(paymentOrders.organizationId, orgId),
					sql`(${paymentOrders.id} = ${id} OR ${paymentOrders.razorpayOrderId} = ${id})`,
				),
			);
		if (!row) throw new ApiError("NOT_FOUND", "payment order not found");
		return c.json(view(row, keyId), 200);
	})
	.openapi(routes.verify, async (c) => {
		const { keySecret } = razorpayConfig(c.get("config"));
		const body = c.req.valid("json");
		const db = c.get("db");
		const orgId = c.get("access").organization.id;
		// Only this organization's orders; the signature is checked against the order id we stored.
		const [order] = await db
			.select()
			.from(paymentOrders)
			.where(and(eq(paymentOrders.organizationId, orgId), eq(paymentOrders.razorpayOrderId, body.razorpay_order_id)));
		if (!order) throw new ApiError("NOT_FOUND", "payment order not found");
		const now = Date.now();
		const valid = await verifyPaymentSignature(
			keySecret,
			order.razorpayOrderId,
			body.razorpay_payment_id,
			body.razorpay_signature,
		);
		if (!valid) {
			await db
				.update(paymentOrders)
				.set({ status: "FAILED", updatedAt: now })
				.where(and(eq(paymentOrders.id, order.id), eq(paymentOrders.status, "CREATED")));
			c.get("logger").warn("payment signature mismatch", { orderId: order.id });
			await publishChange(c.env, requestMeta(c), c.get("logger"), {
				organizationId: orgId,
				action: "payment.verification_failed",
				targetType: "payment_order",
				targetId: order.id,
				after: { paymentId: body.razorpay_payment_id },
			});
			throw new ApiError("BAD_REQUEST", "payment signature is not valid for this order");
		}
		await db.batch([
			db
				.insert(paymentTransactions)
				.values({
					id: newId("txn"),
					organizationId: orgId,
					paymentOrderId: order.id,
					razorpayPaymentId: body.razorpay_payment_id,
					amount: order.amount,
					currency: order.currency,
					status: "verified",
					source: "verify",
					createdAt: now,
					updatedAt: now,
				})
				.onConflictDoNothing(),
			db
				.update(paymentOrders)
				.set({ status: "PAID", updatedAt: now })
				.where(and(eq(paymentOrders.id, order.id), sql`${paymentOrders.status} <> 'PAID'`)),
		]);
		await publishChange(c.env, requestMeta(c), c.get("logger"), {
			organizationId: orgId,
			action: "payment.verified",
			targetType: "payment_order",
			targetId: order.id,
			before: { status: order.status },
			after: { status: "PAID", paymentId: body.razorpay_payment_id },
		});
		return c.json(
			{
				status: "PAID" as const,
				orderId: order.razorpayOrderId,
				paymentOrderId: order.id,
				razorpayOrderId: order.razorpayOrderId,
				paymentId: body.razorpay_payment_id,
			},
			200,
		);
	});
