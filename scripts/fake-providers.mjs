#!/usr/bin/env node
// `npm run fake-providers` (and `npm run dev`, which starts it when .dev.vars has no provider keys): a local stand-in
// for the parts of Razorpay's and Stripe's APIs this service calls, answering their documented shapes, plus what a
// client would get from Razorpay Checkout or Stripe Checkout, so the payment flows run on a laptop with no account:
//   Razorpay  POST /v1/orders, GET /v1/orders/:id, GET /v1/orders/:id/payments, GET /v1/payments/:id
//             POST /_fake/razorpay/pay {order_id}  -> {razorpay_payment_id, razorpay_order_id, razorpay_signature}
//             (what Checkout hands the client: the signature is HMAC-SHA256("<order_id>|<payment_id>", key secret));
//             with "webhook": true also the signed payment.captured and order.paid webhooks
//   Stripe    POST/GET /v1/checkout/sessions[/:id], POST /v1/checkout/sessions/:id/expire,
//             POST /v1/billing_portal/sessions, GET/POST/DELETE
//             /v1/subscriptions/:id, GET /v1/invoices
//             POST /_fake/stripe/checkout/sessions/:id/complete (or the session's url in a browser: a Pay button)
//             -> the signed checkout.session.completed, customer.subscription.created and invoice.paid webhooks
// Its state is kept in <the service's local state>/fake-providers.json (beside the local D1, so a restart keeps both in
// step). Webhooks go to <service>/api/webhooks/{razorpay,stripe}, signed with the webhook secrets.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { baseUrl, openLocalD1, parseArgs, ROOT, readDevServer, readDevVars, usage, waitForEvent } from "./lib.mjs";

const HELP = `usage: npm run fake-providers [-- options]
  A local fake of the Razorpay and Stripe APIs this service calls, for RAZORPAY_API_BASE and STRIPE_API_BASE;
  its state is kept in <persist-to>/fake-providers.json. \`npm run dev\` starts one itself when .dev.vars has no provider keys (see npm run dev -- --help);
  run this only to point a service you started otherwise at it.
  --port <n>                      port (default: 8790, or the next free port after it)
  --service-url <url>             where webhooks go (default: the running npm run dev, from
                                  .wrangler/dev-server.json, else http://localhost:8787)
  --persist-to <dir>              the service's local state: read to wait for webhooks to be processed, and where
                                  the fake keeps its own (default: from .wrangler/dev-server.json, else
                                  .wrangler/state)
  --razorpay-webhook-secret <s>   signs Razorpay webhooks (default: RAZORPAY_WEBHOOK_SECRET from .dev.vars)
  --stripe-webhook-secret <s>     signs Stripe webhooks (default: STRIPE_WEBHOOK_SECRET from .dev.vars)
  --help                          this text
  Any Razorpay key id/secret and any Stripe secret key are accepted (npm run dev configures the ones it issues).
  Completing a payment (what Checkout does in the customer's browser):
    POST /_fake/razorpay/pay {"order_id":"order_..."}
        -> 200 {"razorpay_payment_id","razorpay_order_id","razorpay_signature"}, the body POST /api/payments/verify takes
        "webhook": true  also sends the signed payment.captured and order.paid webhooks
        "fail": true     a failed payment instead (Checkout's payment.failed answer; payment.failed webhook)
        "wait": false    do not wait for the service's queue consumer to process the webhooks (default: wait)
    POST /_fake/stripe/checkout/sessions/<cs_...>/complete
        -> 200 {"id","status":"complete","customer","subscription","events":[{id,type,status,outcome}]}
        sends checkout.session.completed, customer.subscription.created, invoice.paid (each processed before the
        next unless "wait": false); or open the session's url in a browser and press Pay
  Canceling a subscription through the API sends customer.subscription.updated or .deleted the same way.
  GET /_fake lists what the fake holds.`;

// ---- helpers ----

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/** A provider-style id: `<prefix>_` and `n` random letters and digits. */
function rid(prefix, n = 14) {
	let s = "";
	for (const b of randomBytes(n)) s += ALNUM[b % ALNUM.length];
	return `${prefix}_${s}`;
}
const hmacHex = (key, data) => createHmac("sha256", key).update(data).digest("hex");
const nowSeconds = () => Math.floor(Date.now() / 1000);
/** `seconds` plus one calendar month (Stripe's monthly period). */
function plusMonth(seconds) {
	const d = new Date(seconds * 1000);
	d.setUTCMonth(d.getUTCMonth() + 1);
	return Math.floor(d.getTime() / 1000);
}
function sameSecret(a, b) {
	const x = Buffer.from(a);
	const y = Buffer.from(b);
	return x.length === y.length && timingSafeEqual(x, y);
}

/** Stripe's form encoding (`a[b][0][c]=v`) into nested objects and arrays. */
function parseForm(text) {
	const out = {};
	for (const [key, value] of new URLSearchParams(text)) {
		const path = key.replace(/\]/g, "").split("[");
		if (path.some((k) => k === "__proto__" || k === "constructor" || k === "prototype")) continue;
		let node = out;
		for (let i = 0; i < path.length - 1; i++) node = node[path[i]] ??= /^\d+$/.test(path[i + 1]) ? [] : {};
		node[path.at(-1)] = value;
	}
	return out;
}

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const money = (minor, currency) => `${(Number(minor) / 100).toFixed(2)} ${String(currency).toUpperCase()}`;

class HttpError extends Error {
	constructor(status, body) {
		super(`HTTP ${status}`);
		this.status = status;
		this.body = body;
	}
}
const razorpayError = (status, description, code = "BAD_REQUEST_ERROR") =>
	new HttpError(status, { error: { code, description, source: "NA", step: "NA", reason: "NA", metadata: {} } });
const stripeError = (status, message, extra = {}) => new HttpError(status, { error: { type: "invalid_request_error", message, ...extra } });
const fakeError = (status, message) => new HttpError(status, { error: { message } });

const STATE_MAPS = ["orders", "payments", "sessions", "customers", "subscriptions", "portals"];

/**
 * Starts the fake on `port` (0: any free port). Options: serviceUrl (where webhooks go), persistTo (the service's
 * local state, to wait for webhooks to be processed; without it nothing waits), stateFile (where the fake keeps its
 * own state across restarts, beside the service's; without it, in memory only), issueKeys (issue test keys, or
 * reuse the ones issued before and kept in stateFile, and accept only those; the handle's `keys`), else
 * razorpayWebhookSecret and stripeWebhookSecret (any API key is accepted then), log (a line printer).
 * Returns {url, port, keys, close()}.
 */
export async function startFakeProviders(given = {}) {
	const options = { ...given };
	const log = options.log ?? ((line) => console.log(`[fake-providers] ${line}`));
	const state = {
		orders: new Map(),
		payments: new Map(),
		sessions: new Map(),
		customers: new Map(),
		subscriptions: new Map(),
		invoices: [],
		portals: new Map(),
		stripeVersion: "2026-02-25.clover",
		issued: null,
	};
	if (options.stateFile) load(options.stateFile);
	if (options.issueKeys && !state.issued) {
		const hex = (n) => randomBytes(n).toString("hex");
		state.issued = {
			razorpayKeyId: `rzp_test_${hex(7)}`,
			razorpayKeySecret: hex(12),
			razorpayWebhookSecret: hex(16),
			stripeSecretKey: `sk_test_${hex(24)}`,
			stripeWebhookSecret: `whsec_${randomBytes(24).toString("base64")}`,
		};
		save();
	}
	/** The keys the API accepts (any, when none were issued). */
	const keys = options.issueKeys ? state.issued : {};
	options.razorpayWebhookSecret ??= keys.razorpayWebhookSecret;
	options.stripeWebhookSecret ??= keys.stripeWebhookSecret;
	let url = "";

	function load(file) {
		let saved;
		try {
			saved = JSON.parse(readFileSync(file, "utf8"));
		} catch (err) {
			if (err.code !== "ENOENT") log(`could not read ${file} (${err.message}); starting empty`);
			return;
		}
		for (const k of STATE_MAPS) state[k] = new Map(Object.entries(saved[k] ?? {}));
		state.invoices = saved.invoices ?? [];
		state.stripeVersion = saved.stripeVersion ?? state.stripeVersion;
		state.issued = saved.issued ?? null;
	}

	/** Writes the state to stateFile (after every change), so it lives as long as the service's local D1. */
	function save() {
		if (!options.stateFile) return;
		const out = { ...state };
		for (const k of STATE_MAPS) out[k] = Object.fromEntries(state[k]);
		mkdirSync(dirname(options.stateFile), { recursive: true });
		writeFileSync(`${options.stateFile}.tmp`, JSON.stringify(out), { mode: 0o600 });
		renameSync(`${options.stateFile}.tmp`, options.stateFile);
	}

	// ---- webhooks ----

	/**
	 * Sends events one by one (each processed before the next when `wait` and the service's state is known, so
	 * the consumer sees them in order); returns [{id, type, status, outcome}].
	 */
	async function deliver(events, wait) {
		const canWait = wait && options.persistTo;
		const d1 = canWait ? await openLocalD1(options.persistTo) : null;
		const results = [];
		try {
			for (const e of events) {
				let status = 0;
				let answer = "";
				try {
					const res = await fetch(`${options.serviceUrl}${e.path}`, {
						method: "POST",
						headers: { "content-type": "application/json", ...e.headers },
						body: e.body,
						signal: AbortSignal.timeout(10_000),
					});
					status = res.status;
					answer = await res.text();
				} catch (err) {
					answer = err instanceof Error ? (err.cause?.code ?? err.message) : String(err);
				}
				const result = { id: e.id, type: e.type, status, outcome: null };
				if (status >= 200 && status < 300 && d1) {
					const row = await waitForEvent(d1.db, e.id, Date.now() + 30_000);
					result.outcome = row ? row.outcome : "not processed within 30 s";
				}
				log(`webhook ${e.type} ${e.id} -> ${options.serviceUrl}${e.path}: ${status || answer}${result.outcome ? ` ${result.outcome}` : ""}`);
				if (status < 200 || status >= 300) result.answer = answer.slice(0, 500);
				results.push(result);
			}
		} finally {
			await d1?.dispose();
		}
		return results;
	}
	const deliveredOk = (results) => results.every((r) => r.status >= 200 && r.status < 300 && !/^not processed/.test(r.outcome ?? ""));
	const deliveryFailure = (results) =>
		fakeError(502, `webhook delivery failed: ${JSON.stringify(results.filter((r) => r.status < 200 || r.status >= 300 || /^not/.test(r.outcome ?? "")))}`);

	/** The webhook secret of a provider, before anything changes: a webhook that cannot be signed is refused first. */
	function webhookSecret(provider) {
		const secret = provider === "razorpay" ? options.razorpayWebhookSecret : options.stripeWebhookSecret;
		const name = `${provider.toUpperCase()}_WEBHOOK_SECRET`;
		if (!secret) throw fakeError(400, `the fake has no ${name} to sign webhooks with (--${provider}-webhook-secret, or ${name} in .dev.vars)`);
		return secret;
	}

	function razorpayEvent(event, payload) {
		const secret = webhookSecret("razorpay");
		const id = rid("evt");
		const body = JSON.stringify({
			entity: "event",
			account_id: "acc_FakeProviders01",
			event,
			contains: Object.keys(payload),
			payload: Object.fromEntries(Object.entries(payload).map(([k, entity]) => [k, { entity }])),
			created_at: nowSeconds(),
		});
		return {
			id,
			type: event,
			path: "/api/webhooks/razorpay",
			body,
			headers: { "x-razorpay-signature": hmacHex(secret, body), "x-razorpay-event-id": id },
		};
	}

	function stripeEvent(type, object) {
		const secret = webhookSecret("stripe");
		const id = rid("evt", 24);
		const created = nowSeconds();
		const body = JSON.stringify({
			id,
			object: "event",
			api_version: state.stripeVersion,
			created,
			data: { object: structuredClone(object) },
			livemode: false,
			pending_webhooks: 1,
			request: { id: null, idempotency_key: null },
			type,
		});
		// Stripe-Signature: t=<seconds>,v1=hex(HMAC-SHA256("<t>.<body>", the whsec_ secret as is))
		return {
			id,
			type,
			path: "/api/webhooks/stripe",
			body,
			headers: { "stripe-signature": `t=${created},v1=${hmacHex(secret, `${created}.${body}`)}` },
		};
	}

	/** What Stripe does on its own after an API change: the webhook follows, the API answer does not wait for it. */
	function sendLater(type, object) {
		let event;
		try {
			event = stripeEvent(type, object);
		} catch (err) {
			log(`${type} not sent: ${err.body?.error?.message ?? err.message}`);
			return;
		}
		setImmediate(() => deliver([event], false).catch((err) => log(`webhook delivery failed: ${err.message}`)));
	}

	// ---- Razorpay ----

	function razorpayAuth(req) {
		const m = /^Basic (.+)$/.exec(req.headers.authorization ?? "");
		const [id = "", ...rest] = m ? Buffer.from(m[1], "base64").toString("utf8").split(":") : [];
		const secret = rest.join(":");
		const ok =
			id && secret && (keys.razorpayKeyId ? id === keys.razorpayKeyId && sameSecret(secret, keys.razorpayKeySecret ?? "") : true);
		if (!ok) throw razorpayError(401, "Authentication failed");
		return { id, secret };
	}

	function razorpayOrder(id) {
		const order = state.orders.get(id);
		if (!order) throw razorpayError(400, "The id provided does not exist");
		return order;
	}
	const publicOrder = ({ keySecret: _secret, ...order }) => order;

	function createOrder(req, body) {
		const key = razorpayAuth(req);
		const { amount, currency, receipt = null, notes = {}, partial_payment = false } = body ?? {};
		if (!Number.isInteger(amount)) throw razorpayError(400, "The amount must be an integer.");
		if (amount < 100) throw razorpayError(400, "The amount must be atleast INR 1.00");
		if (typeof currency !== "string" || !/^[A-Z]{3}$/.test(currency)) throw razorpayError(400, "The currency field is required.");
		if (receipt !== null && (typeof receipt !== "string" || receipt.length > 40))
			throw razorpayError(400, "The receipt may not be greater than 40 characters.");
		if (typeof notes !== "object" || Array.isArray(notes) || Object.keys(notes).length > 15)
			throw razorpayError(400, "Number of fields in notes should be less than or equal to 15");
		const order = {
			id: rid("order"),
			entity: "order",
			amount,
			amount_paid: 0,
			amount_due: amount,
			currency,
			receipt,
			offer_id: null,
			status: "created",
			attempts: 0,
			notes,
			partial_payment: partial_payment === true,
			created_at: nowSeconds(),
			// not part of Razorpay's answer: the key secret the order was created with signs its Checkout answer
			keySecret: key.secret,
		};
		state.orders.set(order.id, order);
		return publicOrder(order);
	}

	async function pay(body) {
		const { order_id: orderId, fail = false, webhook = false, wait = true, method = "upi" } = body ?? {};
		if (typeof orderId !== "string") throw fakeError(400, "order_id is required");
		const order = state.orders.get(orderId);
		if (!order) throw razorpayError(400, "The id provided does not exist");
		if (order.status === "paid") throw razorpayError(400, "Order has already been paid");
		if (webhook) webhookSecret("razorpay");
		order.attempts += 1;
		const payment = {
			id: rid("pay"),
			entity: "payment",
			amount: order.amount,
			currency: order.currency,
			status: fail ? "failed" : "captured",
			order_id: order.id,
			invoice_id: null,
			international: false,
			method,
			amount_refunded: 0,
			refund_status: null,
			captured: !fail,
			description: null,
			card_id: null,
			bank: null,
			wallet: null,
			vpa: method === "upi" ? "success@razorpay" : null,
			email: "customer@example.com",
			contact: "+919000090000",
			notes: order.notes,
			fee: fail ? null : Math.round(order.amount * 0.02),
			tax: fail ? null : Math.round(order.amount * 0.0036),
			error_code: fail ? "BAD_REQUEST_ERROR" : null,
			error_description: fail ? "Payment failed" : null,
			error_source: fail ? "customer" : null,
			error_step: fail ? "payment_authorization" : null,
			error_reason: fail ? "payment_failed" : null,
			acquirer_data: {},
			created_at: nowSeconds(),
		};
		state.payments.set(payment.id, payment);
		if (fail) order.status = "attempted";
		else Object.assign(order, { status: "paid", amount_paid: order.amount, amount_due: 0 });
		if (webhook) {
			const events = fail
				? [razorpayEvent("payment.failed", { payment })]
				: [razorpayEvent("payment.captured", { payment }), razorpayEvent("order.paid", { payment, order: publicOrder(order) })];
			const results = await deliver(events, wait);
			if (!deliveredOk(results)) throw deliveryFailure(results);
		}
		if (fail) {
			// What Checkout's payment.failed handler receives.
			return {
				error: {
					code: "BAD_REQUEST_ERROR",
					description: "Payment failed",
					source: "customer",
					step: "payment_authorization",
					reason: "payment_failed",
					metadata: { order_id: order.id, payment_id: payment.id },
				},
			};
		}
		// What Checkout's success handler receives, the body of POST /api/payments/verify.
		return {
			razorpay_payment_id: payment.id,
			razorpay_order_id: order.id,
			razorpay_signature: hmacHex(order.keySecret, `${order.id}|${payment.id}`),
		};
	}

	// ---- Stripe ----

	function stripeAuth(req) {
		const key = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1] ?? "";
		const ok = key && (keys.stripeSecretKey ? sameSecret(key, keys.stripeSecretKey) : /^(sk|rk)_/.test(key));
		if (!ok) throw new HttpError(401, { error: { type: "invalid_request_error", message: `Invalid API Key provided: ${key.slice(0, 8)}***` } });
		if (req.headers["stripe-version"]) state.stripeVersion = req.headers["stripe-version"];
	}

	const stripeObject = (map, id, what) => {
		const o = map.get(id);
		if (!o) throw stripeError(404, `No such ${what}: '${id}'`, { code: "resource_missing", param: "id" });
		return o;
	};

	function createSession(params) {
		const mode = params.mode;
		if (!["payment", "subscription", "setup"].includes(mode)) throw stripeError(400, "Missing required param: mode.", { param: "mode" });
		if (!params.success_url) throw stripeError(400, "Missing required param: success_url.", { param: "success_url" });
		if (params.customer && !state.customers.has(params.customer))
			throw stripeError(400, `No such customer: '${params.customer}'`, { code: "resource_missing", param: "customer" });
		const items = Array.isArray(params.line_items) ? params.line_items : [];
		if (mode !== "setup" && items.length === 0) throw stripeError(400, "Missing required param: line_items.", { param: "line_items" });
		const total = items.reduce((sum, li) => sum + Number(li.price_data?.unit_amount ?? 0) * Number(li.quantity ?? 1), 0);
		const created = nowSeconds();
		const id = rid("cs_test", 58);
		const session = {
			id,
			object: "checkout.session",
			mode,
			status: "open",
			payment_status: "unpaid",
			url: `${url}/c/pay/${id}`,
			success_url: params.success_url,
			cancel_url: params.cancel_url ?? null,
			client_reference_id: params.client_reference_id ?? null,
			customer: params.customer ?? null,
			customer_email: params.customer_email ?? null,
			currency: items[0]?.price_data?.currency ?? null,
			amount_subtotal: total,
			amount_total: total,
			metadata: params.metadata ?? {},
			subscription: null,
			invoice: null,
			payment_intent: null,
			livemode: false,
			created,
			expires_at: created + 24 * 3600,
		};
		state.sessions.set(id, { session, items, subscriptionData: params.subscription_data ?? {} });
		return session;
	}

	function customerFor(session) {
		if (session.customer) return session.customer;
		const customer = {
			id: rid("cus"),
			object: "customer",
			email: session.customer_email ?? "customer@example.com",
			metadata: {},
			created: nowSeconds(),
			livemode: false,
		};
		state.customers.set(customer.id, customer);
		return customer.id;
	}

	function subscriptionFor(customer, items, subscriptionData) {
		const start = nowSeconds();
		const end = plusMonth(start);
		const sub = {
			id: rid("sub", 24),
			object: "subscription",
			customer,
			status: "active",
			cancel_at_period_end: false,
			cancel_at: null,
			canceled_at: null,
			ended_at: null,
			trial_end: null,
			created: start,
			start_date: start,
			metadata: subscriptionData.metadata ?? {},
			items: {
				object: "list",
				data: items.map((li) => {
					const pd = li.price_data ?? {};
					return {
						id: rid("si"),
						object: "subscription_item",
						quantity: Number(li.quantity ?? 1),
						current_period_start: start,
						current_period_end: end,
						price: {
							id: rid("price", 24),
							object: "price",
							currency: pd.currency,
							unit_amount: Number(pd.unit_amount ?? 0),
							recurring: { interval: pd.recurring?.interval ?? "month", interval_count: 1 },
							product: rid("prod"),
							lookup_key: null,
							metadata: {},
						},
					};
				}),
				has_more: false,
			},
			latest_invoice: null,
			livemode: false,
		};
		state.subscriptions.set(sub.id, sub);
		return sub;
	}

	function invoiceFor(sub) {
		const lines = sub.items.data.map((item) => ({
			id: rid("il", 24),
			object: "line_item",
			amount: item.price.unit_amount * item.quantity,
			currency: item.price.currency,
			quantity: item.quantity,
			period: { start: item.current_period_start, end: item.current_period_end },
		}));
		const total = lines.reduce((sum, l) => sum + l.amount, 0);
		const id = rid("in", 24);
		const invoice = {
			id,
			object: "invoice",
			number: `FAKE-${String(state.invoices.length + 1).padStart(4, "0")}`,
			status: "paid",
			customer: sub.customer,
			currency: lines[0]?.currency ?? "usd",
			total,
			subtotal: total,
			amount_due: total,
			amount_paid: total,
			amount_remaining: 0,
			billing_reason: "subscription_create",
			created: sub.created,
			period_start: sub.created,
			period_end: sub.created,
			hosted_invoice_url: `${url}/i/${id}`,
			invoice_pdf: `${url}/i/${id}/pdf`,
			parent: { type: "subscription_details", subscription_details: { subscription: sub.id, metadata: sub.metadata } },
			lines: { object: "list", data: lines, has_more: false },
			livemode: false,
		};
		state.invoices.push(invoice);
		sub.latest_invoice = id;
		return invoice;
	}

	/** A session as GET /v1/checkout/sessions/:id answers it; `expand[]=subscription` inlines the subscription. */
	function retrieveSession(id, query) {
		const { session } = stripeObject(state.sessions, id, "checkout.session");
		const expand = [...query.entries()].some(([k, v]) => /^expand\[\d*\]$/.test(k) && v === "subscription");
		if (!expand || !session.subscription) return session;
		return { ...session, subscription: stripeObject(state.subscriptions, session.subscription, "subscription") };
	}

	/** POST /v1/checkout/sessions/:id/expire: an open session can no longer be paid; any other status is a 400. */
	function expireSession(id) {
		const { session } = stripeObject(state.sessions, id, "checkout.session");
		if (session.status !== "open")
			throw stripeError(400, `Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a status of "${session.status}".`);
		Object.assign(session, { status: "expired", url: null });
		return session;
	}

	/** What Stripe does when the customer pays on the Checkout page. */
	async function completeSession(id, { wait = true } = {}) {
		const entry = stripeObject(state.sessions, id, "checkout.session");
		const { session } = entry;
		if (session.status !== "open") throw stripeError(400, `This Checkout Session is no longer active (status ${session.status}).`);
		webhookSecret("stripe");
		session.customer = customerFor(session);
		const events = [];
		let sub = null;
		let invoice = null;
		if (session.mode === "subscription") {
			sub = subscriptionFor(session.customer, entry.items, entry.subscriptionData);
			invoice = invoiceFor(sub);
			Object.assign(session, { subscription: sub.id, invoice: invoice.id });
		} else if (session.mode === "payment") {
			session.payment_intent = rid("pi", 24);
		}
		Object.assign(session, { status: "complete", payment_status: session.mode === "setup" ? "no_payment_required" : "paid", url: null });
		events.push(stripeEvent("checkout.session.completed", session));
		if (sub) events.push(stripeEvent("customer.subscription.created", sub), stripeEvent("invoice.paid", invoice));
		const results = await deliver(events, wait);
		if (!deliveredOk(results)) throw deliveryFailure(results);
		return { id: session.id, status: session.status, customer: session.customer, subscription: session.subscription, events: results };
	}

	function createPortal(params) {
		if (!params.customer) throw stripeError(400, "Missing required param: customer.", { param: "customer" });
		stripeObject(state.customers, params.customer, "customer");
		const id = rid("bps", 24);
		const portal = {
			id,
			object: "billing_portal.session",
			customer: params.customer,
			return_url: params.return_url ?? null,
			url: `${url}/p/session/${id}`,
			created: nowSeconds(),
			livemode: false,
		};
		state.portals.set(id, portal);
		return portal;
	}

	function updateSubscription(id, params) {
		const sub = stripeObject(state.subscriptions, id, "subscription");
		if (sub.status === "canceled")
			throw stripeError(400, "A canceled subscription can only update its cancellation_details and metadata.");
		if (params.metadata) sub.metadata = { ...sub.metadata, ...params.metadata };
		if (params.cancel_at_period_end !== undefined) {
			sub.cancel_at_period_end = params.cancel_at_period_end === "true";
			sub.cancel_at = sub.cancel_at_period_end ? sub.items.data[0].current_period_end : null;
			sub.canceled_at = sub.cancel_at_period_end ? nowSeconds() : null;
		}
		sendLater("customer.subscription.updated", sub);
		return sub;
	}

	function cancelSubscription(id) {
		const sub = stripeObject(state.subscriptions, id, "subscription");
		if (sub.status === "canceled") throw stripeError(400, `No such subscription: '${id}'`, { code: "resource_missing" });
		const now = nowSeconds();
		Object.assign(sub, { status: "canceled", canceled_at: now, ended_at: now, cancel_at_period_end: false });
		sendLater("customer.subscription.deleted", sub);
		return sub;
	}

	function listInvoices(query) {
		const customer = query.get("customer");
		const limit = Math.min(100, Math.max(1, Number(query.get("limit") ?? 10)));
		let list = state.invoices.filter((i) => !customer || i.customer === customer).toReversed();
		const after = query.get("starting_after");
		if (after) {
			const at = list.findIndex((i) => i.id === after);
			if (at < 0) throw stripeError(400, `No such invoice: '${after}'`, { code: "resource_missing", param: "starting_after" });
			list = list.slice(at + 1);
		}
		return { object: "list", data: list.slice(0, limit), has_more: list.length > limit, url: "/v1/invoices" };
	}

	// ---- pages (what the customer's browser shows) ----

	function page(title, body) {
		return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}button{font-size:1rem;padding:.5rem 1rem;margin-right:.5rem}
.note{color:#666;font-size:.85rem}</style></head><body><h1>${escapeHtml(title)}</h1>${body}
<p class="note">Local fake (scripts/fake-providers.mjs): no money moves.</p></body></html>`;
	}

	function checkoutPage(id) {
		const entry = state.sessions.get(id);
		if (!entry) return page("Checkout session not found", `<p>${escapeHtml(id)}</p>`);
		const { session, items } = entry;
		if (session.status !== "open") return page("Checkout session done", `<p>Status: ${escapeHtml(session.status)}</p>`);
		const lines = items
			.map((li) => `<li>${escapeHtml(li.price_data?.product_data?.name ?? "item")}: ${money(li.price_data?.unit_amount, li.price_data?.currency)}${li.price_data?.recurring ? ` / ${escapeHtml(li.price_data.recurring.interval)}` : ""}</li>`)
			.join("");
		return page(
			"Fake Stripe Checkout",
			`<ul>${lines}</ul><form method="post"><button name="action" value="pay">Pay</button><button name="action" value="cancel">Cancel</button></form>`,
		);
	}

	function portalPage(id) {
		const portal = state.portals.get(id);
		if (!portal) return page("Portal session not found", `<p>${escapeHtml(id)}</p>`);
		const subs = [...state.subscriptions.values()].filter((s) => s.customer === portal.customer);
		const rows = subs
			.map((s) => {
				const live = s.status !== "canceled";
				const buttons = live
					? `<button name="cancel" value="${escapeHtml(s.id)}:period_end">Cancel at period end</button><button name="cancel" value="${escapeHtml(s.id)}:now">Cancel now</button>`
					: "";
				return `<li>${escapeHtml(s.id)}: ${escapeHtml(s.status)}${s.cancel_at_period_end ? " (ends at period end)" : ""} ${buttons}</li>`;
			})
			.join("");
		const back = portal.return_url ? `<p><a href="${escapeHtml(portal.return_url)}">Return</a></p>` : "";
		return page("Fake Stripe billing portal", `<form method="post"><ul>${rows || "<li>no subscriptions</li>"}</ul></form>${back}`);
	}

	// ---- routing ----

	const routes = [
		["POST", /^\/v1\/orders$/, (req, body) => createOrder(req, body)],
		["GET", /^\/v1\/orders\/([^/]+)$/, (req, _b, [id]) => (razorpayAuth(req), publicOrder(razorpayOrder(id)))],
		[
			"GET",
			/^\/v1\/orders\/([^/]+)\/payments$/,
			(req, _b, [id]) => {
				razorpayAuth(req);
				razorpayOrder(id);
				const items = [...state.payments.values()].filter((p) => p.order_id === id);
				return { entity: "collection", count: items.length, items };
			},
		],
		[
			"GET",
			/^\/v1\/payments\/([^/]+)$/,
			(req, _b, [id]) => {
				razorpayAuth(req);
				const p = state.payments.get(id);
				if (!p) throw razorpayError(400, "The id provided does not exist");
				return p;
			},
		],
		["POST", /^\/_fake\/razorpay\/pay$/, (_req, body) => pay(body)],
		["POST", /^\/v1\/checkout\/sessions$/, (req, body) => (stripeAuth(req), createSession(body))],
		["GET", /^\/v1\/checkout\/sessions\/([^/]+)$/, (req, _b, [id], query) => (stripeAuth(req), retrieveSession(id, query))],
		["POST", /^\/v1\/checkout\/sessions\/([^/]+)\/expire$/, (req, _b, [id]) => (stripeAuth(req), expireSession(id))],
		["POST", /^\/v1\/billing_portal\/sessions$/, (req, body) => (stripeAuth(req), createPortal(body))],
		["GET", /^\/v1\/subscriptions\/([^/]+)$/, (req, _b, [id]) => (stripeAuth(req), stripeObject(state.subscriptions, id, "subscription"))],
		["POST", /^\/v1\/subscriptions\/([^/]+)$/, (req, body, [id]) => (stripeAuth(req), updateSubscription(id, body))],
		["DELETE", /^\/v1\/subscriptions\/([^/]+)$/, (req, _b, [id]) => (stripeAuth(req), cancelSubscription(id))],
		["GET", /^\/v1\/invoices$/, (req, _b, _m, query) => (stripeAuth(req), listInvoices(query))],
		["POST", /^\/_fake\/stripe\/checkout\/sessions\/([^/]+)\/complete$/, (_req, body, [id]) => completeSession(id, body ?? {})],
		[
			"GET",
			/^\/_fake$/,
			() => ({
				razorpay: { orders: [...state.orders.values()].map(publicOrder), payments: [...state.payments.values()] },
				stripe: {
					checkoutSessions: [...state.sessions.values()].map((e) => e.session),
					customers: [...state.customers.values()],
					subscriptions: [...state.subscriptions.values()],
					invoices: state.invoices,
				},
			}),
		],
	];

	async function readBody(req) {
		const chunks = [];
		for await (const c of req) chunks.push(c);
		const text = Buffer.concat(chunks).toString("utf8");
		if (!text) return {};
		// Stripe's SDK sends forms, Razorpay's API takes JSON; `curl -d '{...}'` labels JSON as a form.
		if (!/^\s*[{[]/.test(text)) return parseForm(text);
		try {
			return JSON.parse(text);
		} catch {
			throw fakeError(400, "body is not JSON");
		}
	}

	function send(res, status, body, type = "application/json") {
		const text = type === "application/json" ? JSON.stringify(body) : body;
		res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(text), "request-id": rid("req") });
		res.end(text);
	}

	async function handle(req, res) {
		const u = new URL(req.url ?? "/", "http://fake.local");
		const path = u.pathname;
		// Browser pages: Stripe Checkout and the billing portal.
		const checkout = /^\/c\/pay\/([^/]+)$/.exec(path);
		const portal = /^\/p\/session\/([^/]+)$/.exec(path);
		if (req.method === "GET" && checkout) return send(res, 200, checkoutPage(checkout[1]), "text/html; charset=utf-8");
		if (req.method === "GET" && portal) return send(res, 200, portalPage(portal[1]), "text/html; charset=utf-8");
		const invoice = /^\/i\/([^/]+)(?:\/pdf)?$/.exec(path);
		if (req.method === "GET" && invoice) {
			const inv = state.invoices.find((i) => i.id === invoice[1]);
			const body = inv
				? `<p>${escapeHtml(inv.number)}: ${money(inv.total, inv.currency)}, ${escapeHtml(inv.status)}</p>`
				: `<p>${escapeHtml(invoice[1])} not found</p>`;
			return send(res, inv ? 200 : 404, page("Fake Stripe invoice", body), "text/html; charset=utf-8");
		}
		if (req.method === "POST" && checkout) {
			const form = await readBody(req);
			const entry = state.sessions.get(checkout[1]);
			if (!entry) return send(res, 404, checkoutPage(checkout[1]), "text/html; charset=utf-8");
			if (form.action === "cancel") {
				res.writeHead(303, { location: entry.session.cancel_url ?? "/" });
				return res.end();
			}
			await completeSession(checkout[1]);
			res.writeHead(303, { location: entry.session.success_url.replaceAll("{CHECKOUT_SESSION_ID}", entry.session.id) });
			return res.end();
		}
		if (req.method === "POST" && portal) {
			const form = await readBody(req);
			const [subId, when] = String(form.cancel ?? "").split(":");
			if (when === "now") cancelSubscription(subId);
			else updateSubscription(subId, { cancel_at_period_end: "true" });
			res.writeHead(303, { location: path });
			return res.end();
		}
		for (const [method, pattern, fn] of routes) {
			const m = pattern.exec(path);
			if (!m || method !== req.method) continue;
			const body = req.method === "GET" || req.method === "DELETE" ? {} : await readBody(req);
			return send(res, 200, await fn(req, body, m.slice(1).map(decodeURIComponent), u.searchParams));
		}
		if (path === "/") return send(res, 200, `${HELP}\n`, "text/plain; charset=utf-8");
		if (path.startsWith("/v1/") && req.headers.authorization?.startsWith("Bearer "))
			throw stripeError(404, `Unrecognized request URL (${req.method}: ${path}).`);
		throw razorpayError(404, "The requested URL was not found on the server.");
	}

	const server = createServer((req, res) => {
		handle(req, res)
			.catch((err) => {
				if (err instanceof HttpError) return send(res, err.status, err.body);
				log(`error: ${err instanceof Error ? err.stack : String(err)}`);
				return send(res, 500, { error: { message: err instanceof Error ? err.message : String(err) } });
			})
			.finally(() => {
				if (req.method !== "GET") save();
				if (!req.url?.startsWith("/_fake") || req.method !== "GET") log(`${req.method} ${req.url} ${res.statusCode}`);
			});
	});
	const port = await new Promise((resolve, reject) => {
		server.once("error", reject);
		server.listen({ port: options.port ?? 0, host: options.host ?? "localhost", exclusive: true }, () => resolve(server.address().port));
	});
	url = `http://localhost:${port}`;
	// Pages of sessions from before a restart are on this port now.
	for (const { session } of state.sessions.values()) if (session.status === "open") session.url = `${url}/c/pay/${session.id}`;
	for (const portal of state.portals.values()) portal.url = `${url}/p/session/${portal.id}`;
	return {
		url,
		port,
		keys: options.issueKeys ? { ...state.issued } : null,
		close: () => new Promise((resolve) => server.close(() => resolve())),
	};
}

/** Starts the fake on `from` or the next free port after it (up to 100 tries), never on a port in `avoid`. */
export async function startFakeProvidersFrom(from, options, avoid = []) {
	for (let port = from; port < from + 100; port++) {
		if (avoid.includes(port)) continue;
		try {
			return await startFakeProviders({ ...options, port });
		} catch (err) {
			if (err?.code !== "EADDRINUSE") throw err;
		}
	}
	throw new Error(`no free port in ${from}..${from + 99}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
	const args = parseArgs(process.argv.slice(2));
	usage(args, HELP);
	const vars = readDevVars();
	const persistTo = args["persist-to"] ?? readDevServer()?.persistTo ?? join(ROOT, ".wrangler", "state");
	const options = {
		serviceUrl: typeof args["service-url"] === "string" ? args["service-url"].replace(/\/+$/, "") : baseUrl({}),
		persistTo,
		stateFile: join(persistTo, "fake-providers.json"),
		razorpayWebhookSecret: args["razorpay-webhook-secret"] ?? vars.RAZORPAY_WEBHOOK_SECRET,
		stripeWebhookSecret: args["stripe-webhook-secret"] ?? vars.STRIPE_WEBHOOK_SECRET,
	};
	const fake = args.port ? await startFakeProviders({ ...options, port: Number(args.port) }) : await startFakeProvidersFrom(8790, options);
	console.log(`[fake-providers] listening on ${fake.url}; webhooks go to ${options.serviceUrl}`);
	console.log(`[fake-providers] set RAZORPAY_API_BASE=${fake.url} and STRIPE_API_BASE=${fake.url} in .dev.vars`);
	for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => fake.close().then(() => process.exit(0)));
}
