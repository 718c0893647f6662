import type { MockInstance, vi as Vi } from "vitest";
import { uid } from "./factories";
import { jwks } from "./jwt";
import { TEST_ISSUER } from "./vars";

/**
 * The outside world, stubbed at the network boundary (globalThis.fetch). Every test runs with the
 * defaults (test/setup/network.ts); a test that needs other answers calls stubNetwork again.
 */
export type Handler = (req: Request) => Response | Promise<Response>;

export interface NetworkOptions {
	/** What the Clerk JWKS endpoint serves; default the "primary" and "rs384" test keys. */
	jwks?: () => unknown;
	/** Handlers by URL prefix (Razorpay, Stripe, a tenant's webhook receiver …). */
	routes?: Record<string, Handler>;
}

/**
 * Replaces fetch: the Clerk JWKS endpoint answers with the given keys, `routes` by URL prefix, and
 * anything else is a 404, so a test never reaches the internet. Returns the spy to count fetches.
 */
export function stubNetwork(vi: typeof Vi, o: NetworkOptions = {}): MockInstance<typeof fetch> {
	const serve = o.jwks ?? (() => jwks("primary", "rs384"));
	// DNS-over-HTTPS answers for the fake receiver by default; a test's fakeDns(...) route replaces it.
	const routes = { ...fakeDns(), ...o.routes };
	return vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
		const req = new Request(input as RequestInfo, init);
		if (req.url.startsWith(TEST_ISSUER) && req.url.includes("jwks")) {
			return new Response(JSON.stringify(serve()), { headers: { "content-type": "application/json" } });
		}
		for (const [prefix, handler] of Object.entries(routes)) if (req.url.startsWith(prefix)) return handler(req);
		return new Response("not stubbed", { status: 404 });
	});
}

export interface RazorpayOrderRequest {
	amount: number;
	currency: string;
	receipt?: string;
	notes?: Record<string, string>;
}

/** Razorpay's Orders API (recorded response shape); `calls` records what the Worker sent. */
export function fakeRazorpay() {
	const calls: { auth: string | null; body: RazorpayOrderRequest }[] = [];
	const routes: Record<string, Handler> = {
		"https://api.razorpay.com/v1/orders": async (req) => {
			const body = await req.json<RazorpayOrderRequest>();
			calls.push({ auth: req.headers.get("authorization"), body });
			if (body.currency !== "INR" && body.currency !== "USD") {
				return Response.json({ error: { code: "BAD_REQUEST_ERROR", description: "Currency is not supported" } }, { status: 400 });
			}
			return Response.json({
				id: `order_${uid("rzp").slice(-14)}`,
				entity: "order",
				amount: body.amount,
				amount_paid: 0,
				amount_due: body.amount,
				currency: body.currency,
				receipt: body.receipt,
				offer_id: null,
				status: "created",
				attempts: 0,
				notes: body.notes ?? [],
				created_at: Math.floor(Date.now() / 1000),
			});
		},
	};
	return { calls, routes };
}

/** A billing meter event as Stripe holds it: `payload.value` is a string of an integer. */
export interface StripeMeterEvent {
	event_name: string;
	identifier: string;
	timestamp: number;
	payload: { stripe_customer_id: string; value: string };
}

/** A request body as text (form bodies: Request#text() warns on a non-text content type). */
const bodyText = async (req: Request) => new TextDecoder().decode(await req.arrayBuffer());

interface CheckoutSessionState {
	status: "open" | "expired" | "complete";
	subscription: { id: string; status: string } | null;
}

/**
 * Stripe's Checkout Sessions and Billing Meter Events APIs (recorded response shapes); `calls` records
 * what the Worker sent. As Stripe does, a meter event whose identifier Stripe already holds is refused
 * (400 "An event already exists with identifier …", Stripe-Should-Retry: false), and a repeated
 * Idempotency-Key replays the first answer, errors included. `meter.failNext` answers that many
 * requests 500 after recording their event (Stripe took it, the Worker never learns);
 * `meter.downNext` answers that many 503 without recording anything.
 */
export function fakeStripe() {
	const calls: { url: string; body: string; auth: string | null; idempotencyKey: string | null; stripeVersion: string | null }[] = [];
	const meter = { events: [] as StripeMeterEvent[], failNext: 0, downNext: 0 };
	const replays = new Map<string, Response>();
	/**
	 * Checkout Sessions by id: `status` open (created), expired (POST …/expire, open ones only, else 400) or
	 * complete (a test pays one: `pay`), with the subscription the payment created.
	 */
	const checkout = {
		sessions: new Map<string, CheckoutSessionState>(),
		/** What Stripe does when the customer pays: the session completes with a subscription in `status`. */
		pay(id: string, status = "active"): string {
			const session = checkout.sessions.get(id);
			if (session?.status !== "open") throw new Error(`session ${id} is not open`);
			const sub = `sub_${uid("c").slice(-14)}`;
			Object.assign(session, { status: "complete", subscription: { id: sub, status } });
			return sub;
		},
		/** Subscriptions GET and DELETE (cancel now) /v1/subscriptions/:id know, by id: their status (others: 404). */
		subscriptions: new Map<string, string>(),
	};
	const sessionObject = (id: string, s: CheckoutSessionState, expand: boolean) => ({
		id,
		object: "checkout.session",
		mode: "subscription",
		status: s.status,
		url: s.status === "open" ? `https://checkout.stripe.com/c/pay/${id}` : null,
		subscription: s.subscription && (expand ? { object: "subscription", ...s.subscription } : s.subscription.id),
	});
	const record = async (req: Request) => {
		const call = {
			url: req.url,
			body: await bodyText(req),
			auth: req.headers.get("authorization"),
			idempotencyKey: req.headers.get("idempotency-key"),
			stripeVersion: req.headers.get("stripe-version"),
		};
		calls.push(call);
		return call;
	};
	const routes: Record<string, Handler> = {
		"https://api.stripe.com/v1/billing/meter_events": async (req) => {
			const { body, idempotencyKey } = await record(req);
			if (meter.downNext > 0) {
				meter.downNext--;
				return Response.json({ error: { type: "api_error", message: "Service unavailable" } }, { status: 503 });
			}
			const replay = idempotencyKey ? replays.get(idempotencyKey) : undefined;
			if (replay) return replay.clone();
			const form = new URLSearchParams(body);
			const event: StripeMeterEvent = {
				event_name: form.get("event_name") ?? "",
				identifier: form.get("identifier") ?? "",
				timestamp: Number(form.get("timestamp") ?? Math.floor(Date.now() / 1000)),
				payload: { stripe_customer_id: form.get("payload[stripe_customer_id]") ?? "", value: form.get("payload[value]") ?? "" },
			};
			let answer: Response;
			if (meter.events.some((e) => e.identifier === event.identifier)) {
				answer = Response.json(
					{ error: { type: "invalid_request_error", message: `An event already exists with identifier ${event.identifier}.` } },
					{ status: 400, headers: { "stripe-should-retry": "false" } },
				);
			} else {
				meter.events.push(event);
				answer = Response.json({ object: "billing.meter_event", created: Math.floor(Date.now() / 1000), livemode: false, ...event });
				if (meter.failNext > 0) {
					meter.failNext--;
					answer = Response.json({ error: { type: "api_error", message: "An unknown error occurred" } }, { status: 500 });
				}
			}
			if (idempotencyKey) replays.set(idempotencyKey, answer.clone());
			return answer;
		},
		"https://api.stripe.com/v1/checkout/sessions": async (req) => {
			await record(req);
			const [id, action] = new URL(req.url).pathname.split("/").slice(4);
			if (!id && req.method === "POST") {
				const created = `cs_test_${uid("s").slice(-20)}`;
				checkout.sessions.set(created, { status: "open", subscription: null });
				return Response.json(sessionObject(created, { status: "open", subscription: null }, false));
			}
			const session = id ? checkout.sessions.get(id) : undefined;
			if (!id || !session) {
				return Response.json(
					{ error: { type: "invalid_request_error", code: "resource_missing", param: "session", message: `No such checkout.session: '${id}'` } },
					{ status: 404 },
				);
			}
			if (req.method === "POST" && action === "expire") {
				if (session.status !== "open") {
					return Response.json(
						{ error: { type: "invalid_request_error", message: `Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a status of "${session.status}".` } },
						{ status: 400 },
					);
				}
				session.status = "expired";
				return Response.json(sessionObject(id, session, false));
			}
			const url = new URL(req.url);
			return Response.json(sessionObject(id, session, url.searchParams.get("expand[0]") === "subscription"));
		},
	};
	routes["https://api.stripe.com/v1/subscriptions/"] = async (req) => {
		await record(req);
		const id = decodeURIComponent(new URL(req.url).pathname.split("/")[3] ?? "");
		const status = checkout.subscriptions.get(id);
		if (!status) {
			return Response.json(
				{ error: { type: "invalid_request_error", code: "resource_missing", param: "id", message: `No such subscription: '${id}'` } },
				{ status: 404 },
			);
		}
		if (req.method === "DELETE") {
			// Cancel now: a subscription that already ended cannot be canceled again.
			if (status === "canceled" || status === "incomplete_expired") {
				return Response.json(
					{ error: { type: "invalid_request_error", message: "A canceled subscription can only update its cancellation_details and metadata." } },
					{ status: 400 },
				);
			}
			checkout.subscriptions.set(id, "canceled");
			const now = Math.floor(Date.now() / 1000);
			return Response.json({ id, object: "subscription", status: "canceled", canceled_at: now, ended_at: now, cancel_at_period_end: false });
		}
		return Response.json({ id, object: "subscription", status });
	};
	return { calls, meter, checkout, routes };
}

/** A tenant's receiving server for outgoing webhooks: records deliveries, answers with `status`. */
export function fakeReceiver(prefix = "https://hooks.tenant.example.com/") {
	const state = {
		received: [] as { url: string; headers: Headers; body: string }[],
		status: 200,
	};
	const routes: Record<string, Handler> = {
		[prefix]: async (req) => {
			state.received.push({ url: req.url, headers: req.headers, body: await req.text() });
			return new Response(state.status < 300 ? "ok" : "nope", { status: state.status });
		},
	};
	return { state, routes };
}

/** What the default DNS stub resolves: the fake receiver's host, to a public address. */
const DEFAULT_DNS: Record<string, string> = { "hooks.tenant.example.com": "93.184.216.34" };

/**
 * 1.1.1.1's DNS-over-HTTPS JSON API (`?name=&type=A|AAAA`, recorded answer shape): `names` (plus the
 * defaults) answer with their address as an A or AAAA record; other names answer NXDOMAIN.
 */
export function fakeDns(names: Record<string, string> = {}): Record<string, Handler> {
	const table: Record<string, string> = { ...DEFAULT_DNS, ...names };
	return {
		"https://cloudflare-dns.com/dns-query": (req) => {
			const q = new URL(req.url).searchParams;
			const name = (q.get("name") ?? "").replace(/\.$/, "");
			const type = q.get("type") === "AAAA" ? 28 : 1;
			const address = table[name];
			const Answer = address && address.includes(":") === (type === 28) ? [{ name, type, TTL: 300, data: address }] : [];
			return Response.json(
				{ Status: address ? 0 : 3, TC: false, RD: true, RA: true, AD: false, CD: false, Question: [{ name, type }], Answer },
				{ headers: { "content-type": "application/dns-json" } },
			);
		},
	};
}
