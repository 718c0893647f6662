import { and, asc, eq, exists, sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { webhookDeliveries, webhookEndpoints } from "../db/schema";
import { ApiError } from "../errors";
import { newId } from "../lib/ids";
import type { DeliverMessage } from "../queue/tenant-events";
import { keysetPage, type PageQuery } from "./keyset-page";
import { newEndpointSecret, refuseUrl, replayDelivery } from "./outgoing-webhooks";

/** An organization's outgoing webhook endpoints and their delivery log, always scoped by organization. */
export type WebhookEndpoint = typeof webhookEndpoints.$inferSelect;

function checkUrl(url: string) {
	const reason = refuseUrl(url);
	if (reason) throw new ApiError("VALIDATION_FAILED", `url: ${reason}`, { errors: [{ path: "url", message: reason }] });
}

const own = (orgId: string, endpointId: string) =>
	and(eq(webhookEndpoints.organizationId, orgId), eq(webhookEndpoints.id, endpointId));
const eventTypesJson = (types: string[]) => JSON.stringify([...new Set(types)]);

export async function getEndpoint(db: Database, orgId: string, endpointId: string): Promise<WebhookEndpoint> {
	const [row] = await db.select().from(webhookEndpoints).where(own(orgId, endpointId));
	if (!row) throw new ApiError("NOT_FOUND", "webhook endpoint not found");
	return row;
}

export function listEndpoints(db: Database, orgId: string): Promise<WebhookEndpoint[]> {
	return db
		.select()
		.from(webhookEndpoints)
		.where(eq(webhookEndpoints.organizationId, orgId))
		.orderBy(asc(webhookEndpoints.createdAt));
}

/** A new enabled endpoint with a fresh signing secret; a URL to a non-public host is a 400. */
export async function createEndpoint(
	db: Database,
	orgId: string,
	input: { url: string; eventTypes: string[] },
): Promise<WebhookEndpoint> {
	checkUrl(input.url);
	const now = Date.now();
	const [row] = await db
		.insert(webhookEndpoints)
		.values({
			id: newId("whe"),
			organizationId: orgId,
			url: input.url,
			eventTypes: eventTypesJson(input.eventTypes),
			secret: newEndpointSecret(),
			status: "enabled",
			createdAt: now,
			updatedAt: now,
		})
		.returning();
	return row!;
}

/** Re-enabling an endpoint resets its failure count and disabled reason. Returns the row before and after. */
export async function updateEndpoint(
	db: Database,
	orgId: string,
	endpointId: string,
	patch: { url?: string; eventTypes?: string[]; status?: "enabled" | "disabled" },
): Promise<{ before: WebhookEndpoint; after: WebhookEndpoint }> {
	const before = await getEndpoint(db, orgId, endpointId);
	if (patch.url) checkUrl(patch.url);
	const [after] = await db
		.update(webhookEndpoints)
		.set({
			...(patch.url ? { url: patch.url } : {}),
			...(patch.eventTypes ? { eventTypes: eventTypesJson(patch.eventTypes) } : {}),
			...(patch.status
				? { status: patch.status, ...(patch.status === "enabled" ? { consecutiveFailures: 0, disabledReason: null } : {}) }
				: {}),
			updatedAt: Date.now(),
		})
		.where(own(orgId, endpointId))
		.returning();
	return { before, after: after! };
}

/** Deletes the endpoint; returns it as it was. */
export async function deleteEndpoint(db: Database, orgId: string, endpointId: string): Promise<WebhookEndpoint> {
	const before = await getEndpoint(db, orgId, endpointId);
	await db.delete(webhookEndpoints).where(own(orgId, endpointId));
	return before;
}

/**
 * The endpoint's deliveries, newest first, one keyset page over (created_at, id) descending; 404 for an
 * unknown endpoint. Each page reads at most limit + 2 rows (issue 19):
 * - A first page checks the endpoint inside its query (uncorrelated, so SQLite reads its row once):
 *   limit + 1 deliveries and the endpoint's row; a deleted endpoint (its deliveries stay until
 *   retention prunes them) gives an empty page, then 404.
 * - A cursor page reads limit + 1 deliveries and the cursor's own row, and no endpoint: the cursor
 *   continues a list whose endpoint existed when it began.
 * Only an empty page reads the endpoint again, to tell an unknown endpoint (404) from one without deliveries.
 */
export async function listDeliveries(db: Database, orgId: string, endpointId: string, q: PageQuery) {
	const p = await keysetPage(
		db,
		webhookDeliveries,
		"createdAt",
		"desc",
		and(
			eq(webhookDeliveries.organizationId, orgId),
			eq(webhookDeliveries.endpointId, endpointId),
			q.cursor ? undefined : exists(db.select({ one: sql`1` }).from(webhookEndpoints).where(own(orgId, endpointId))),
		),
		q,
	);
	if (p.data.length === 0) await getEndpoint(db, orgId, endpointId);
	return p;
}

/** A new delivery of a past delivery's event; the endpoint must be enabled (409) and the delivery its own (404). */
export async function replayEndpointDelivery(
	db: Database,
	orgId: string,
	endpointId: string,
	deliveryId: string,
): Promise<DeliverMessage> {
	const endpoint = await getEndpoint(db, orgId, endpointId);
	if (endpoint.status !== "enabled") throw new ApiError("CONFLICT", "the endpoint is disabled; enable it first");
	const message = await replayDelivery(db, orgId, endpointId, deliveryId);
	if (!message) throw new ApiError("NOT_FOUND", "delivery not found");
	return message;
}
