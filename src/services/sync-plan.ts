import type { SQL } from "drizzle-orm";
import type { TenantEvent } from "../queue/tenant-events";

/**
 * What one verified webhook event (Clerk, Razorpay, Stripe) turns into: D1 statements, run later in
 * a db.batch (atomic, one round trip), plus what to record and invalidate once they ran.
 */
export interface SyncPlan {
	statements: SQL[];
	organizationId: string | null;
	entityId: string | null;
	/** SQL evaluating to 1 when, after the statements ran, the event turned out older than stored state. */
	staleCheck: SQL | null;
	/**
	 * Isolate caches to drop once applied. `storesOf`: SQL selecting `organization_id` of the organizations
	 * whose tenant stores must forget their mirrored directory answers too (a custom role or permission
	 * changed for their members); `orgId` is told on its own.
	 */
	invalidate: { orgId?: string; userId?: string; all?: boolean; storesOf?: SQL };
	ignored: boolean;
	/**
	 * Audit entries and outgoing webhook events of the event: written to the outbox in the event's own
	 * batch, only if it applied (outcome processed: not stale, failed or ignored), and relayed after it.
	 */
	events?: TenantEvent[];
	/**
	 * Outbox statements for the event's batch whatever its outcome, for events whose rows the batch
	 * computes (services/outbox.ts outboxInsertPerOrganization).
	 */
	outbox?: SQL[];
	/**
	 * Set when the payload is malformed (a part of it cannot be read): nothing is applied, the event
	 * is recorded as failed with this error. Retrying could not change the payload, so it is not retried.
	 */
	failed?: string;
	/** Something in the payload was ignored (the event still applies): logged as a warning. */
	warning?: string;
	/**
	 * The organization whose Clerk data says dataRegion "eu" while its directory row is still a placeholder
	 * (a session token created it before any Clerk event): the region is applied once the batch committed
	 * (services/operator.ts applyClerkRegion), as an operator's PATCH would, while the tenant has no data.
	 */
	regionClaim?: string;
}

/** Thrown by planners for a payload part they cannot read; the event ends `failed` with this message. */
export class MalformedPayload extends Error {
	override name = "MalformedPayload";
}
