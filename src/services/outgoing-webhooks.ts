import { and, eq, inArray, sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { webhookDeliveries, webhookEndpoints } from "../db/schema";
import { standardWebhookSignature } from "../lib/crypto";
import { newId } from "../lib/ids";
import { dohResolver, type Resolver, refuseAddress, refuseResolvedHost } from "../lib/net-policy";
import type { DeliverMessage, TenantEvent, WebhookEventMessage } from "../queue/tenant-events";
import { systemAudit } from "./events-bus";
import { PLANS, planOf } from "./plans";

/** Event types tenants can subscribe to ("*" = all). */
export const TENANT_EVENT_TYPES = [
	"membership.created",
	"membership.updated",
	"membership.deleted",
	"plan.changed",
	"usage.threshold_reached",
	"order.created",
	"order.status_changed",
	"api_key.created",
	"api_key.updated",
	"api_key.rotated",
	"api_key.revoked",
] as const;

export const MAX_ATTEMPTS = 8;
/**
 * An endpoint is disabled once it has failed this many attempts in a row (across deliveries) and for
 * DISABLE_AFTER_FAILING_MS: a receiver down for a minute while ten events went out is not disabled (its
 * deliveries are retried for about three hours), one that has answered nothing but errors for a day is.
 */
export const DISABLE_AFTER_FAILURES = 10;
export const DISABLE_AFTER_FAILING_MS = 24 * 3600_000;
const TIMEOUT_MS = 10_000;

/** Exponential backoff before attempt n+1 (n = attempts made): 5 s, 20 s, 80 s … capped at 1 h. */
function deliveryBackoffSeconds(attempts: number): number {
	return Math.min(5 * 4 ** Math.max(0, attempts - 1), 3600);
}

export function newEndpointSecret(): string {
	const bytes = crypto.getRandomValues(new Uint8Array(32));
	return `whsec_${btoa(String.fromCharCode(...bytes))}`;
}

/**
 * Only http(s) URLs to public hosts: no credentials, no localhost or internal names, and no IP literal
 * in any IANA special-purpose block (RFC 6890 and updates, IPv4 and IPv6, including IPv4-mapped and
 * IPv4-compatible IPv6 forms: refuseAddress). Returns the reason a URL is refused, or null. A name is
 * resolved only at delivery time (attemptDelivery), since what it points at can change after
 * registration.
 */
export function refuseUrl(raw: string): string | null {
	let url: URL;
	try {
		url = new URL(raw);
	} catch {
		return "not a URL";
	}
	if (url.protocol !== "https:" && url.protocol !== "http:") return "only http and https URLs are allowed";
	if (url.username || url.password) return "credentials in the URL are not allowed";
	// The URL parser has already normalized IP literals (0x7f.1, 2130706433 -> 127.0.0.1; [::127.0.0.1] -> [::7f00:1]).
	const host = url.hostname.toLowerCase().replace(/\.$/, "");
	// An empty label ("localhost..", "127.0.0.1..": the parser keeps such a name as it is) names no public host.
	if ((!host.includes(".") && !host.includes(":")) || /^\.|\.\.|\.$/.test(host)) return "the host must be a public domain name";
	if (/(^|\.)(localhost|local|internal|intranet|lan|home|corp|localdomain|test|invalid|example)$/.test(host)) {
		return "the host is not public";
	}
	return refuseAddress(host);
}

/**
 * Creates one pending delivery per enabled endpoint subscribed to the event; returns the messages to send
 * (with those of its deliveries written before but never attempted, when the event comes again).
 * None while the organization's plan (read from the directory) lacks outgoing webhooks: after a downgrade
 * the endpoints stay, and answer 402 to manage, but receive nothing.
 */
export async function fanOut(db: Database, directory: D1Database, event: WebhookEventMessage): Promise<DeliverMessage[]> {
	const endpoints = await db
		.select()
		.from(webhookEndpoints)
		.where(and(eq(webhookEndpoints.organizationId, event.organizationId), eq(webhookEndpoints.status, "enabled")));
	const subscribed = endpoints.filter((e) => {
		const types = JSON.parse(e.eventTypes) as string[];
		return types.includes("*") || types.includes(event.type);
	});
	if (subscribed.length === 0) return [];
	const org = await directory.prepare("SELECT plan FROM organizations WHERE id = ?").bind(event.organizationId).first<{ plan: string }>();
	if (!PLANS[planOf(org?.plan)].features.outgoing_webhooks) return [];
	// A redelivered event message must not create a second delivery per endpoint. One whose delivery rows
	// were written but never handed on (what applied the event failed after this fan-out, so the event was
	// tried again) gets those back: pending and never attempted, else nothing would ever send them.
	const existing = await db
		.select({ id: webhookDeliveries.id, endpointId: webhookDeliveries.endpointId, status: webhookDeliveries.status, attempts: webhookDeliveries.attempts })
		.from(webhookDeliveries)
		.where(
			and(
				eq(webhookDeliveries.organizationId, event.organizationId),
				eq(webhookDeliveries.eventId, event.id),
				inArray(
					webhookDeliveries.endpointId,
					subscribed.map((e) => e.id),
				),
			),
		);
	const already = new Set(existing.map((r) => r.endpointId));
	const deliver = (deliveryId: string): DeliverMessage => ({ kind: "webhook.deliver", deliveryId, organizationId: event.organizationId });
	const stranded = existing.filter((r) => r.status === "pending" && r.attempts === 0).map((r) => deliver(r.id));
	const now = Date.now();
	const payload = JSON.stringify({
		id: event.id,
		type: event.type,
		timestamp: new Date(event.occurredAt).toISOString(),
		data: event.data,
	});
	const rows = subscribed
		.filter((e) => !already.has(e.id))
		.map((e) => ({
			id: newId("dlv"),
			organizationId: event.organizationId,
			endpointId: e.id,
			eventId: event.id,
			eventType: event.type,
			payload,
			status: "pending" as const,
			createdAt: now,
			updatedAt: now,
		}));
	if (rows.length === 0) return stranded;
	// 100 bound parameters per statement: 9 columns → 10 rows per INSERT, all in one batch.
	const inserts = [];
	for (let i = 0; i < rows.length; i += 10) inserts.push(db.insert(webhookDeliveries).values(rows.slice(i, i + 10)));
	await db.batch(inserts as [(typeof inserts)[number], ...(typeof inserts)[number][]]);
	return [...stranded, ...rows.map((r) => deliver(r.id))];
}

/**
 * Why a delivery may not go to this URL now, and whether that is final: the URL rules (refuseUrl), then
 * the name's current A/AAAA records over DNS-over-HTTPS (refuseResolvedHost). A URL the rules refuse or
 * a name resolving to a special-purpose address (localtest.me, 127.0.0.1.nip.io -> 127.0.0.1) is final:
 * retrying cannot help until the tenant changes it, and every retry would be another probe. A resolver
 * failure or a name without addresses is an ordinary failed attempt (retried with backoff).
 * The check narrows, but cannot close, DNS rebinding between this lookup and fetch's own; fetch from a
 * Worker does not reach private networks in any case.
 */
async function refuseDestination(raw: string, resolve: Resolver): Promise<{ error: string; final: boolean } | null> {
	const byRule = refuseUrl(raw);
	if (byRule) return { error: `refused: ${byRule}`, final: true };
	let transient = false;
	const tracked: Resolver = async (host) => {
		try {
			const addresses = await resolve(host);
			if (addresses.length === 0) transient = true;
			return addresses;
		} catch (err) {
			transient = true;
			throw err;
		}
	};
	const byDns = await refuseResolvedHost(new URL(raw).hostname, tracked);
	return byDns ? { error: `refused: ${byDns}`, final: !transient } : null;
}

interface AttemptResult {
	/** Seconds to wait before the next attempt; absent when the delivery is finished. */
	retryInSeconds?: number;
	status: "succeeded" | "retrying" | "failed";
	/** Audit/event messages to publish (endpoint disabled). */
	publish: TenantEvent[];
}

/**
 * One delivery attempt, signed per Standard Webhooks (webhook-id = the event id, webhook-timestamp,
 * webhook-signature = v1,<base64 HMAC-SHA256 of "id.timestamp.body">). 2xx succeeds and resets the
 * endpoint's failure count; anything else (3xx included: redirects are not followed) is retried with
 * backoff up to MAX_ATTEMPTS, and an endpoint failing DISABLE_AFTER_FAILURES times in a row, for at least
 * DISABLE_AFTER_FAILING_MS, is disabled.
 * Before sending, the destination is checked (refuseDestination): a refusal is recorded as the attempt's
 * lastError, counts as a failed attempt, and ends the delivery `failed` at once when it is final.
 */
export async function attemptDelivery(
	db: Database,
	deliveryId: string,
	organizationId: string,
	resolve: Resolver = dohResolver(),
): Promise<AttemptResult> {
	const [row] = await db
		.select({ delivery: webhookDeliveries, endpoint: webhookEndpoints })
		.from(webhookDeliveries)
		.innerJoin(webhookEndpoints, eq(webhookEndpoints.id, webhookDeliveries.endpointId))
		.where(and(eq(webhookDeliveries.id, deliveryId), eq(webhookDeliveries.organizationId, organizationId)));
	if (!row) {
		// Its endpoint was deleted (with a retry or a first attempt still to come): the delivery ends here.
		await db
			.update(webhookDeliveries)
			.set({ status: "failed", lastError: "endpoint deleted", nextAttemptAt: null, updatedAt: Date.now() })
			.where(and(eq(webhookDeliveries.id, deliveryId), eq(webhookDeliveries.organizationId, organizationId), inArray(webhookDeliveries.status, ["pending", "retrying"])));
		return { status: "failed", publish: [] };
	}
	if (row.delivery.status === "succeeded" || row.delivery.status === "failed") return { status: row.delivery.status, publish: [] };
	const { delivery, endpoint } = row;
	const now = Date.now();
	if (endpoint.status !== "enabled") {
		await db
			.update(webhookDeliveries)
			.set({ status: "failed", lastError: "endpoint disabled", nextAttemptAt: null, updatedAt: now })
			.where(eq(webhookDeliveries.id, delivery.id));
		return { status: "failed", publish: [] };
	}

	let statusCode: number | null = null;
	const refused = await refuseDestination(endpoint.url, resolve);
	let error: string | null = refused?.error ?? null;
	if (!error) {
		const signature = await standardWebhookSignature(endpoint.secret, delivery.eventId, Math.floor(now / 1000), delivery.payload);
		try {
			const res = await fetch(endpoint.url, {
				method: "POST",
				headers: {
					"content-type": "application/json",
					"user-agent": "edge-tenant-backend-webhooks/1",
					"webhook-id": delivery.eventId,
					"webhook-timestamp": String(Math.floor(now / 1000)),
					"webhook-signature": signature,
				},
				body: delivery.payload,
				redirect: "manual",
				signal: AbortSignal.timeout(TIMEOUT_MS),
			});
			statusCode = res.status;
			await res.body?.cancel();
			if (res.status >= 300 && res.status < 400) error = `HTTP ${res.status} (redirects are not followed)`;
			else if (!res.ok) error = `HTTP ${res.status}`;
		} catch (err) {
			error = err instanceof Error ? err.message.slice(0, 200) : "request failed";
		}
	}
	const attempts = delivery.attempts + 1;
	if (!error) {
		await db.batch([
			db
				.update(webhookDeliveries)
				.set({ status: "succeeded", attempts, lastStatusCode: statusCode, lastError: null, nextAttemptAt: null, updatedAt: now })
				.where(eq(webhookDeliveries.id, delivery.id)),
			db.update(webhookEndpoints).set({ consecutiveFailures: 0, failingSince: null }).where(eq(webhookEndpoints.id, endpoint.id)),
		]);
		return { status: "succeeded", publish: [] };
	}

	// A run of failures starts at the first one after a success (a count of 0: code before failing_since
	// existed reset only the count, so a value found beside a 0 is stale; one beside a count it then raised
	// again is caught before disabling, below).
	const [updated] = await db
		.update(webhookEndpoints)
		.set({
			consecutiveFailures: sql`${webhookEndpoints.consecutiveFailures} + 1`,
			failingSince: sql`CASE WHEN ${webhookEndpoints.consecutiveFailures} = 0 OR ${webhookEndpoints.failingSince} IS NULL THEN ${now} ELSE ${webhookEndpoints.failingSince} END`,
		})
		.where(eq(webhookEndpoints.id, endpoint.id))
		.returning({ failures: webhookEndpoints.consecutiveFailures, failingSince: webhookEndpoints.failingSince });
	const publish: TenantEvent[] = [];
	let disabled = false;
	const failures = updated?.failures ?? 0;
	let failingMs = now - (updated?.failingSince ?? now);
	// Before disabling: a success since the run's recorded start means that start is stale (code before
	// failing_since reset only the count on a success, and may have failed again since: a rollback, a
	// deploy's overlap). The run then starts now. Asked only at the threshold, once per run.
	if (failures >= DISABLE_AFTER_FAILURES && failingMs >= DISABLE_AFTER_FAILING_MS && updated?.failingSince != null) {
		const [succeeded] = await db
			.select({ one: sql<number>`1` })
			.from(webhookDeliveries)
			.where(
				and(
					eq(webhookDeliveries.organizationId, organizationId),
					eq(webhookDeliveries.endpointId, endpoint.id),
					eq(webhookDeliveries.status, "succeeded"),
					sql`${webhookDeliveries.updatedAt} > ${updated.failingSince}`,
				),
			)
			.limit(1);
		if (succeeded) {
			await db.update(webhookEndpoints).set({ failingSince: now }).where(eq(webhookEndpoints.id, endpoint.id));
			failingMs = 0;
		}
	}
	if (failures >= DISABLE_AFTER_FAILURES && failingMs >= DISABLE_AFTER_FAILING_MS) {
		const reason = `disabled after ${failures} consecutive failed attempts over ${Math.floor(failingMs / 3600_000)} hours (last: ${error})`;
		const res = await db
			.update(webhookEndpoints)
			.set({ status: "disabled", disabledReason: reason, updatedAt: now, version: sql`${webhookEndpoints.version} + 1` })
			.where(and(eq(webhookEndpoints.id, endpoint.id), eq(webhookEndpoints.status, "enabled")))
			.returning({ id: webhookEndpoints.id });
		disabled = true;
		if (res.length > 0) {
			publish.push(
				systemAudit({
					organizationId,
					action: "webhook_endpoint.disabled",
					targetType: "webhook_endpoint",
					targetId: endpoint.id,
					after: { reason },
				}),
			);
		}
	}
	const final = disabled || attempts >= MAX_ATTEMPTS || refused?.final === true;
	const retryInSeconds = final ? undefined : deliveryBackoffSeconds(attempts);
	await db
		.update(webhookDeliveries)
		.set({
			status: final ? "failed" : "retrying",
			attempts,
			lastStatusCode: statusCode,
			lastError: error,
			nextAttemptAt: retryInSeconds === undefined ? null : now + retryInSeconds * 1000,
			updatedAt: now,
		})
		.where(eq(webhookDeliveries.id, delivery.id));
	return { status: final ? "failed" : "retrying", retryInSeconds, publish };
}

/** Manual replay: a new delivery of the same event (same webhook-id) to the same endpoint. */
export async function replayDelivery(
	db: Database,
	organizationId: string,
	endpointId: string,
	deliveryId: string,
): Promise<DeliverMessage | null> {
	const [d] = await db
		.select()
		.from(webhookDeliveries)
		.where(
			and(
				eq(webhookDeliveries.organizationId, organizationId),
				eq(webhookDeliveries.endpointId, endpointId),
				eq(webhookDeliveries.id, deliveryId),
			),
		);
	if (!d) return null;
	const now = Date.now();
	const id = newId("dlv");
	await db.insert(webhookDeliveries).values({
		id,
		organizationId,
		endpointId,
		eventId: d.eventId,
		eventType: d.eventType,
		payload: d.payload,
		status: "pending",
		createdAt: now,
		updatedAt: now,
	});
	return { kind: "webhook.deliver", deliveryId: id, organizationId };
}
