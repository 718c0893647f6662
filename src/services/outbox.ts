import { asc, inArray } from "drizzle-orm";
import type { Database } from "../db/client";
import { outbox } from "../db/schema";
import { newId } from "../lib/ids";
import type { TenantEvent } from "../queue/tenant-events";

/** Parks tenant events in the D1 outbox (the cron re-sends them): the one outbox insert. */
export async function parkInOutbox(db: Database, messages: TenantEvent[]): Promise<void> {
	if (messages.length === 0) return;
	const now = Date.now();
	await db
		.insert(outbox)
		.values(messages.map((m) => ({ id: newId("obx"), organizationId: m.organizationId, body: JSON.stringify(m), createdAt: now })));
}

/** The oldest parked events, oldest first. */
export function oldestInOutbox(db: Database, limit: number): Promise<{ id: string; body: string }[]> {
	return db.select({ id: outbox.id, body: outbox.body }).from(outbox).orderBy(asc(outbox.createdAt)).limit(limit);
}

/** Deletes parked events once they were re-sent. */
export async function removeFromOutbox(db: Database, ids: string[]): Promise<void> {
	if (ids.length === 0) return;
	await db.delete(outbox).where(inArray(outbox.id, ids));
}
