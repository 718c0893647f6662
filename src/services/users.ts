import { eq } from "drizzle-orm";
import type { Database } from "../db/client";
import { users } from "../db/schema";
import { TtlCache } from "../lib/ttl-cache";

interface UserSummary {
	id: string;
	email: string | null;
	firstName: string | null;
	lastName: string | null;
	deletedAt: number | null;
}

const USER_CACHE_TTL_MS = 5_000;
// User rows, 5 s per isolate (null = not synced yet). The webhook consumer evicts what it changes;
// other isolates see a change within 5 s.
const userCache = new TtlCache<string, UserSummary | null>(10_000);

export function invalidateUser(userId?: string): void {
	if (userId) userCache.delete(userId);
	else userCache.clear();
}

export async function getUser(db: Database, userId: string): Promise<UserSummary | null> {
	const hit = userCache.get(userId);
	if (hit !== undefined) return hit;
	const [row] = await db
		.select({
			id: users.id,
			email: users.email,
			firstName: users.firstName,
			lastName: users.lastName,
			deletedAt: users.deletedAt,
		})
		.from(users)
		.where(eq(users.id, userId));
	const value = row ?? null;
	userCache.set(userId, value, USER_CACHE_TTL_MS);
	return value;
}
