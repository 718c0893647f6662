import type { AuthContext } from "../auth/claims";
import type { Database } from "../db/client";
import type { OrgAccess } from "../services/access";
import type { RateLimiter } from "../services/rate-limit";
import type { MeterResult } from "../services/usage-types";

/**
 * What a tenant store object gives the request it serves (`c.var.store`): the middleware and routes
 * are the Worker's own, and ask the host instead of D1 and the shared Durable Objects.
 */
/** A member's place in seat order and whether it is within the organization's seats. */
export interface SeatStanding {
	served: boolean;
	/** 1-based place of the member in seat order. */
	place: number;
	members: number;
	seats: number;
	plan: string;
	/** The seat_limit override (null: the plan's seats). */
	seatLimit: number | null;
}

export interface StoreHost {
	/** The tenant's database: the object's own SQLite. */
	db: Database;
	/** The store's schema version (tenant-store/migrations): what its tables offer, such as v3's products_search. */
	schemaVersion(): number;
	/** The caller's standing, from the store's mirror of the directory (membership, role, plan). */
	access(auth: AuthContext, orgId: string): Promise<OrgAccess>;
	/** The member's seat standing (services/identity.ts seatStanding), from the same mirror. */
	seat(orgId: string, userId: string): Promise<SeatStanding>;
	/** The tenant's rate-limit buckets, held by the object. */
	limiter: RateLimiter;
	/** Meters `count` calls at `at` against the monthly quota, in the object's usage ledger (exact). */
	usage(orgId: string, count: number, quota: number, at: number): Promise<MeterResult>;
}
