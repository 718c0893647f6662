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
	/** Isolate caches to drop once applied. */
	invalidate: { orgId?: string; userId?: string; all?: boolean };
	ignored: boolean;
	/** Audit entries and outgoing webhook events to publish once the event is applied (not when stale). */
	events?: TenantEvent[];
}
