import { and, eq, inArray, sql } from "drizzle-orm";
import { Webhook } from "svix";
import type { Database } from "../db/client";
import { webhookDeliveries, webhookEndpoints } from "../db/schema";
import { newId } from "../lib/ids";
import type { DeliverMessage, TenantEvent, WebhookEventMessage } from "../queue/tenant-events";
import { systemAudit } from "./events-bus";

/** Event types tenants can subscribe to ("*" = all). */
export const TENANT_EVENT_TYPES = [
	"membership.created",
	"membership.updated",
	"membership.deleted",
	"plan.changed",
	"usage.threshold_reached",
	"order.created",
	"order.status_changed",
] as const;

export const MAX_ATTEMPTS = 8;
/** Consecutive failed attempts (across deliveries) after which an endpoint is disabled. */
export const DISABLE_AFTER_FAILURES = 10;
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
 * Only http(s) URLs to public hosts: no credentials, no localhost or internal names, no IP literals in
 * loopback, private, link-local, CGNAT, multicast or reserved ranges (IPv4 and IPv6). Returns the reason
 * a URL is refused, or null. (Workers cannot resolve DNS here; a public name that resolves privately is
 * still unreachable from Cloudflare's network.)
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
	const host = url.hostname.toLowerCase().replace(/\.$/, "");
	if (!host.includes(".") && !host.includes(":")) return "the host must be a public domain name";
	if (/(^|\.)(localhost|local|internal|intranet|lan|home|corp|localdomain|test|invalid|example)$/.test(host)) {
		return "the host is not public";
	}
	const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
	if (v4) {
		const [a, b] = [Number(v4[1]), Number(v4[2])];
		if (
			a === 0 ||
			a === 10 ||
			a === 127 ||
			(a === 100 && b >= 64 && b <= 127) ||
			(a === 169 && b === 254) ||
			(a === 172 && b >= 16 && b <= 31) ||
			(a === 192 && b === 168) ||
			(a === 192 && b === 0) ||
			(a === 198 && (b === 18 || b === 19)) ||
			a >= 224
		) {
			return "private or reserved IP addresses are not allowed";
		}
	}
	if (host.startsWith("[")) {
		const v6 = host.slice(1, -1);
		if (v6 === "::" || v6 === "::1" || /^(fc|fd|fe8|fe9|fea|feb|ff)/.test(v6) || v6.startsWith("::ffff:")) {
			return "private or reserved IP addresses are not allowed";
		}
	}
	return null;
}

/** Creates one pending delivery per enabled endpoint subscribed to the event; returns the messages to send. */
export async function fanOut(db: Database, event: WebhookEventMessage): Promise<DeliverMessage[]> {
	const endpoints = await db
		.select()
		.from(webhookEndpoints)
		.where(and(eq(webhookEndpoints.organizationId, event.organizationId), eq(webhookEndpoints.status, "enabled")));
	const subscribed = endpoints.filter((e) => {
		const types = JSON.parse(e.eventTypes) as string[];
		return types.includes("*") || types.includes(event.type);
	});
	if (subscribed.length === 0) return [];
	// A redelivered event message must not create a second delivery per endpoint.
	const already = new Set(
		(
			await db
				.select({ endpointId: webhookDeliveries.endpointId })
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
				)
		).map((r) => r.endpointId),
	);
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
	if (rows.length === 0) return [];
	// 100 bound parameters per statement: 9 columns → 10 rows per INSERT, all in one batch.
	const inserts = [];
	for (let i = 0; i < rows.length; i += 10) inserts.push(db.insert(webhookDeliveries).values(rows.slice(i, i + 10)));
	await db.batch(inserts as [(typeof inserts)[number], ...(typeof inserts)[number][]]);
	return rows.map((r) => ({ kind: "webhook.deliver", deliveryId: r.id, organizationId: r.organizationId }));
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
 * endpoint's failure count; anything else is retried with backoff up to MAX_ATTEMPTS, and an endpoint
 * failing DISABLE_AFTER_FAILURES times in a row is disabled.
 */
export async function attemptDelivery(db: Database, deliveryId: string, organizationId: string): Promise<AttemptResult> {
	const [row] = await db
		.select({ delivery: webhookDeliveries, endpoint: webhookEndpoints })
		.from(webhookDeliveries)
		.innerJoin(webhookEndpoints, eq(webhookEndpoints.id, webhookDeliveries.endpointId))
		.where(and(eq(webhookDeliveries.id, deliveryId), eq(webhookDeliveries.organizationId, organizationId)));
	if (!row || row.delivery.status === "succeeded" || row.delivery.status === "failed")
		return { status: row?.delivery.status === "succeeded" ? "succeeded" : "failed", publish: [] };
	const { delivery, endpoint } = row;
	const now = Date.now();
	if (endpoint.status !== "enabled") {
		await db
			.update(webhookDeliveries)
			.set({ status: "failed", lastError: "endpoint disabled", updatedAt: now })
			.where(eq(webhookDeliveries.id, delivery.id));
		return { status: "failed", publish: [] };
	}

	let statusCode: number | null = null;
	let error: string | null = refuseUrl(endpoint.url);
	if (!error) {
		const signature = new Webhook(endpoint.secret).sign(delivery.eventId, new Date(now), delivery.payload);
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
			if (!res.ok) error = `HTTP ${res.status}`;
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
			db.update(webhookEndpoints).set({ consecutiveFailures: 0 }).where(eq(webhookEndpoints.id, endpoint.id)),
		]);
		return { status: "succeeded", publish: [] };
	}

	const [updated] = await db
		.update(webhookEndpoints)
		.set({ consecutiveFailures: sql`${webhookEndpoints.consecutiveFailures} + 1` })
		.where(eq(webhookEndpoints.id, endpoint.id))
		.returning({ failures: webhookEndpoints.consecutiveFailures });
	const publish: TenantEvent[] = [];
	let disabled = false;
	if ((updated?.failures ?? 0) >= DISABLE_AFTER_FAILURES) {
		const reason = `disabled after ${updated?.failures} consecutive failed attempts (last: ${error})`;
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
	const final = disabled || attempts >= MAX_ATTEMPTS;
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
