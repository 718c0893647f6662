import { createRoute, z } from "@hono/zod-openapi";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../../env";
import { requireAuth } from "../../middleware/auth";
import { requireActiveOrg } from "../../middleware/authorize";
import { idempotency } from "../../middleware/idempotency";
import { meter } from "../../middleware/meter";
import { rateLimit } from "../../middleware/rate-limit";
import { IdempotencyKeyHeader, jsonContent, orgErrors, problem } from "../../openapi";
import { MAX_ORDER_AMOUNT } from "../../services/razorpay";
import { deprecated } from "../legacy/deprecated";

const middleware = [requireAuth(), requireActiveOrg(), rateLimit("tenant"), meter()];

const PaymentOrderSchema = z
	.object({
		id: z.string().openapi({ description: OPENAPI_TEXT ? "Razorpay's order id (order_…), for Checkout" : undefined }),
		entity: z.literal("order"),
		paymentOrderId: z.string().openapi({ description: OPENAPI_TEXT ? "This service's id for the order" : undefined }),
		razorpayOrderId: z.string(),
		amount: z
			.number()
			.int()
			.min(0)
			.max(MAX_ORDER_AMOUNT)
			.openapi({ description: OPENAPI_TEXT ? "Smallest currency unit (paise)" : undefined }),
		currency: z.string(),
		receipt: z.string().nullable(),
		status: z.enum(["CREATED", "PAID", "FAILED"]),
		keyId: z.string().openapi({ description: OPENAPI_TEXT ? "Razorpay key id for Checkout" : undefined }),
		createdAt: z.number().int(),
	})
	.openapi("PaymentOrder");

const CreatePaymentOrder = z.strictObject({
	amount: z
		.number()
		.int()
		.min(100)
		.max(MAX_ORDER_AMOUNT)
		.refine(Number.isSafeInteger, "must be a safe integer")
		.openapi({
			description: OPENAPI_TEXT ? `Smallest currency unit; Razorpay's minimum is 100. At most ${MAX_ORDER_AMOUNT} (far below 2^53, so amounts stay exact integers)` : undefined,
		}),
	currency: z
		.string()
		.regex(/^[A-Z]{3}$/)
		.default("INR"),
	receipt: z.string().min(1).max(40).optional(),
	// Razorpay takes at most 15 note pairs; the order adds organization_id.
	notes: z
		.record(z.string().max(40), z.string().max(256))
		.refine((n) => Object.keys(n).length <= 14, "at most 14 notes (Razorpay takes 15, one is the organization's)")
		.optional(),
});

const VerifyPaymentFields = z.strictObject({
	razorpay_order_id: z.string().min(1).max(64),
	razorpay_payment_id: z.string().min(1).max(64),
	razorpay_signature: z.string().min(1).max(256),
});

// Deprecated: clients of the earlier Spring system send the same three fields in camelCase.
const VerifyPaymentCamelCase = z
	.strictObject({
		razorpayOrderId: VerifyPaymentFields.shape.razorpay_order_id,
		razorpayPaymentId: VerifyPaymentFields.shape.razorpay_payment_id,
		razorpaySignature: VerifyPaymentFields.shape.razorpay_signature,
	})
	.openapi({ deprecated: true, description: OPENAPI_TEXT ? "Deprecated: the same three fields in camelCase, for clients of the earlier system." : undefined });

/**
 * Checkout's snake_case fields, or (deprecated) the same fields in camelCase; handlers see snake_case. Both forms are
 * in the document (anyOf); a mix of the two is neither. A body that is neither is reported against the form it is
 * closest to (fieldErrors picks the union branch with the fewest issues).
 */
const VerifyPayment = z
	.union([
		VerifyPaymentFields,
		VerifyPaymentCamelCase.transform((v) => ({
			razorpay_order_id: v.razorpayOrderId,
			razorpay_payment_id: v.razorpayPaymentId,
			razorpay_signature: v.razorpaySignature,
		})),
	])
	.openapi({
		description:
			OPENAPI_TEXT ? "Checkout's `razorpay_order_id`, `razorpay_payment_id`, `razorpay_signature`. Deprecated: the same fields in camelCase " +
			"(`razorpayOrderId`, `razorpayPaymentId`, `razorpaySignature`) are accepted for clients of the earlier system." : undefined,
	});

export const createOrder = createRoute({
	method: "post",
	path: "/api/payments/orders",
	tags: ["payments"],
	summary: OPENAPI_TEXT ? "Create a Razorpay order for the active organization" : undefined,
	security: [{ bearer: [] }],
	middleware: [...middleware, idempotency()],
	request: {
		headers: IdempotencyKeyHeader,
		body: { required: true, content: { "application/json": { schema: CreatePaymentOrder } } },
	},
	responses: {
		201: jsonContent(PaymentOrderSchema, "Created at Razorpay and stored (CREATED)"),
		...orgErrors,
		409: problem("Idempotency-Key reuse"),
	},
});

export const getOrder = createRoute({
	method: "get",
	path: "/api/payments/orders/{id}",
	tags: ["payments"],
	summary: OPENAPI_TEXT ? "A payment order of the active organization" : undefined,
	security: [{ bearer: [] }],
	middleware,
	request: {
		params: z.object({
			id: z
				.string()
				.min(1)
				.max(128)
				.openapi({ param: { name: "id", in: "path" } }),
		}),
	},
	responses: { 200: jsonContent(PaymentOrderSchema, "The order"), ...orgErrors },
});

/** Answers to the deprecated camelCase body carry Deprecation and Link, as the deprecated aliases do (errors included). */
const markCamelCase = createMiddleware<AppEnv>(async (c, next) => {
	const body: unknown = await c.req.json().catch(() => null);
	const camel = typeof body === "object" && body !== null && "razorpayOrderId" in body;
	return camel ? deprecated(() => "/api/payments/verify")(c, next) : next();
});

export const verify = createRoute({
	method: "post",
	path: "/api/payments/verify",
	tags: ["payments"],
	summary: OPENAPI_TEXT ? "Verify Razorpay Checkout's signature and mark the order PAID" : undefined,
	description:
		OPENAPI_TEXT ? "HMAC-SHA256 of `<stored order id>|<payment id>` with the key secret, compared in constant time. Verifying twice is harmless. " +
		"Only the order's creator or a member with org:billing:manage may verify it; for anyone else the order is unknown (404). " +
		"A bad signature is a 400 and leaves the order unchanged. Amount and currency are cross-checked on Razorpay's webhook." : undefined,
	security: [{ bearer: [] }],
	middleware: [markCamelCase, ...middleware],
	request: { body: { required: true, content: { "application/json": { schema: VerifyPayment } } } },
	responses: {
		200: jsonContent(
			z
				.object({
					status: z.literal("PAID"),
					orderId: z.string(),
					paymentOrderId: z.string(),
					razorpayOrderId: z.string(),
					paymentId: z.string(),
				})
				.openapi("PaymentVerified"),
			"Verified",
		),
		...orgErrors,
		400: problem("Bad signature (the order is left unchanged) or bad input"),
		404: problem("No such order in the organization, or the caller neither created it nor has org:billing:manage"),
	},
});
