import { index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

// Billing: Razorpay payment orders and their transactions, Stripe subscriptions.

/** A Razorpay order created for an organization (POST /api/payments/orders). */
export const paymentOrders = sqliteTable(
	"payment_orders",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id").notNull(),
		razorpayOrderId: text("razorpay_order_id").notNull().unique(),
		amount: integer("amount").notNull(),
		currency: text("currency").notNull(),
		receipt: text("receipt"),
		status: text("status", { enum: ["CREATED", "PAID", "FAILED"] }).notNull(),
		createdBy: text("created_by").notNull(),
		createdAt: integer("created_at").notNull(),
		updatedAt: integer("updated_at").notNull(),
	},
	(t) => [index("payment_orders_org_created_idx").on(t.organizationId, t.createdAt)],
);

/** A payment against a payment order, from /api/payments/verify or a Razorpay webhook (one row per payment id). */
export const paymentTransactions = sqliteTable(
	"payment_transactions",
	{
		id: text("id").primaryKey(),
		organizationId: text("organization_id").notNull(),
		paymentOrderId: text("payment_order_id").notNull(),
		razorpayPaymentId: text("razorpay_payment_id").notNull().unique(),
		amount: integer("amount"),
		currency: text("currency"),
		status: text("status").notNull(),
		source: text("source", { enum: ["verify", "webhook"] }).notNull(),
		createdAt: integer("created_at").notNull(),
		updatedAt: integer("updated_at").notNull(),
	},
	(t) => [index("payment_transactions_org_order_idx").on(t.organizationId, t.paymentOrderId)],
);

/** Stripe subscriptions, one row each; the best plan among an organization's live ones is copied to organizations.plan. */
export const subscriptions = sqliteTable(
	"subscriptions",
	{
		organizationId: text("organization_id").notNull(),
		provider: text("provider").notNull().default("stripe"),
		customerId: text("customer_id"),
		/** One row per provider subscription (Stripe's sub_…); an organization may have several. */
		subscriptionId: text("subscription_id").primaryKey(),
		plan: text("plan").notNull(),
		status: text("status").notNull(),
		currentPeriodEnd: integer("current_period_end"),
		/** Stripe's cancel_at_period_end: the subscription ends (customer.subscription.deleted) at currentPeriodEnd. */
		cancelAtPeriodEnd: integer("cancel_at_period_end", { mode: "boolean" }).notNull().default(false),
		/** End of the trial (ms), while Stripe reports one. */
		trialEnd: integer("trial_end"),
		/** Provider clock (ms) of the event that made it past_due; the plan is kept for a grace period from then (plans.ts). */
		pastDueSince: integer("past_due_since"),
		/** Provider clock (ms) of the last applied event: older events never overwrite newer state. */
		sourceUpdatedAt: integer("source_updated_at").notNull(),
		updatedAt: integer("updated_at").notNull(),
	},
	(t) => [
		index("subscriptions_customer_idx").on(t.customerId),
		index("subscriptions_org_idx").on(t.organizationId),
		index("subscriptions_status_period_idx").on(t.status, t.currentPeriodEnd),
	],
);

/**
 * Stripe Checkout Sessions not yet known to be settled (expired, or paid for a subscription since ended):
 * a new Checkout expires every older one of its organization (services/billing.ts startCheckout).
 */
export const checkoutSessions = sqliteTable(
	"checkout_sessions",
	{
		/** Opening order (AUTOINCREMENT: never reused). */
		seq: integer("seq").primaryKey({ autoIncrement: true }),
		sessionId: text("session_id").notNull().unique(),
		organizationId: text("organization_id").notNull(),
		createdAt: integer("created_at").notNull(),
	},
	(t) => [index("checkout_sessions_org_idx").on(t.organizationId, t.seq)],
);

/**
 * Deleted organizations whose billing at Stripe may not have ended yet (services/billing-endings.ts): the
 * cron expires their Checkout Sessions and cancels their subscriptions, then removes the row.
 */
export const billingEndings = sqliteTable("billing_endings", {
	organizationId: text("organization_id").primaryKey(),
	createdAt: integer("created_at").notNull(),
});
