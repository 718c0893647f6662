import { and, asc, eq, exists, type SQL, sql } from "drizzle-orm";
import { runBatch, typedRow } from "../db/batch";
import type { Database } from "../db/client";
import { webhookDeliveries, webhookEndpoints } from "../db/schema";
import { ApiError } from "../errors";
import { newId } from "../lib/ids";
import type { DeliverMessage } from "../queue/tenant-events";
import { type AuditInput, changeOutbox } from "./events-bus";
import { keysetPage, type PageQuery } from "./keyset-page";
import { type ChangeLog, collectOutbox } from "./outbox";
import { newEndpointSecret, refuseUrl, replayDelivery } from "./outgoing-webhooks";
import { endpointView, endpointViewSql } from "./views";

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

/**
 * A change of an endpoint with its `webhook_endpoint.<action>` audit entry, in one batch (written
 * only while `when` holds); the outbox rows go to `log` for the relay. Returns the endpoint row the
 * batch's statement returned, if any.
 */
async function commitEndpointChange(
	db: Database,
	log: ChangeLog,
	orgId: string,
	endpointId: string,
	change: { action: string; statement: SQL; first?: boolean } & Pick<AuditInput, "before"> & { after?: SQL; when: SQL },
): Promise<WebhookEndpoint | undefined> {
	const audit = changeOutbox(
		log,
		{ organizationId: orgId, action: `webhook_endpoint.${change.action}`, targetType: "webhook_endpoint", targetId: endpointId, before: change.before },
		undefined,
		{ when: change.when, ...(change.after ? { after: change.after } : {}) },
	);
	const results = await runBatch(db.$client, change.first ? [...audit, change.statement] : [change.statement, ...audit]);
	collectOutbox(log, results);
	const raw = results.map((r) => r.results[0] as Record<string, unknown> | undefined).find((r) => r !== undefined && "secret" in r);
	return raw ? typedRow(webhookEndpoints, raw) : undefined;
}

/**
 * Endpoints an organization may register: every event fans out to one delivery per endpoint (each retried
 * with backoff), and the list is answered whole.
 */
export const MAX_ENDPOINTS = 20;

/**
 * A new enabled endpoint with a fresh signing secret; a URL to a non-public host is a 400, a 21st endpoint
 * a 409 (the count and the insert are one statement). Audited in its batch.
 */
export async function createEndpoint(
	db: Database,
	orgId: string,
	input: { url: string; eventTypes: string[] },
	log: ChangeLog,
): Promise<WebhookEndpoint> {
	checkUrl(input.url);
	const now = Date.now();
	const id = newId("whe");
	const insert = sql`INSERT INTO webhook_endpoints (id, organization_id, url, event_types, secret, status, created_at, updated_at)
		SELECT ${id}, ${orgId}, ${input.url}, ${eventTypesJson(input.eventTypes)}, ${newEndpointSecret()}, 'enabled', ${now}, ${now}
		WHERE (SELECT count(*) FROM webhook_endpoints WHERE organization_id = ${orgId}) < ${MAX_ENDPOINTS}
		RETURNING *`;
	const row = await commitEndpointChange(db, log, orgId, id, {
		action: "created",
		statement: insert,
		after: endpointViewSql(id),
		when: sql`EXISTS (SELECT 1 FROM webhook_endpoints WHERE id = ${id})`,
	});
	if (!row) {
		throw new ApiError("CONFLICT", `an organization has at most ${MAX_ENDPOINTS} webhook endpoints: delete one (or widen one's eventTypes) first`);
	}
	return row;
}

/**
 * Re-enabling an endpoint resets its failure count, the start of its failing run and its disabled reason. Returns the row before and
 * after; the entry (after: the endpoint as updated) is written in the update's batch.
 */
export async function updateEndpoint(
	db: Database,
	orgId: string,
	endpointId: string,
	patch: { url?: string; eventTypes?: string[]; status?: "enabled" | "disabled" },
	log: ChangeLog,
): Promise<{ before: WebhookEndpoint; after: WebhookEndpoint }> {
	const before = await getEndpoint(db, orgId, endpointId);
	if (patch.url !== undefined) checkUrl(patch.url);
	const now = Date.now();
	const update = db
		.update(webhookEndpoints)
		.set({
			...(patch.url !== undefined ? { url: patch.url } : {}),
			...(patch.eventTypes ? { eventTypes: eventTypesJson(patch.eventTypes) } : {}),
			...(patch.status
				? { status: patch.status, ...(patch.status === "enabled" ? { consecutiveFailures: 0, failingSince: null, disabledReason: null } : {}) }
				: {}),
			updatedAt: now,
		})
		.where(own(orgId, endpointId))
		.returning()
		.getSQL();
	const after = await commitEndpointChange(db, log, orgId, endpointId, {
		action: "updated",
		statement: update,
		before: endpointView(before),
		after: endpointViewSql(endpointId),
		when: sql`EXISTS (SELECT 1 FROM webhook_endpoints WHERE id = ${endpointId} AND organization_id = ${orgId} AND updated_at = ${now})`,
	});
	if (!after) throw new ApiError("NOT_FOUND", "webhook endpoint not found");
	return { before, after };
}

/** Deletes the endpoint; returns it as it was. The entry is written ahead of the delete, exactly when it applies. */
export async function deleteEndpoint(db: Database, orgId: string, endpointId: string, log: ChangeLog): Promise<WebhookEndpoint> {
	const before = await getEndpoint(db, orgId, endpointId);
	await commitEndpointChange(db, log, orgId, endpointId, {
		action: "deleted",
		statement: db.delete(webhookEndpoints).where(own(orgId, endpointId)).getSQL(),
		first: true,
		before: endpointView(before),
		when: sql`EXISTS (SELECT 1 FROM webhook_endpoints WHERE id = ${endpointId} AND organization_id = ${orgId})`,
	});
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
