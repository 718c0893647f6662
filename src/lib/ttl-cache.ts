/**
 * A small bounded map with per-entry expiry, for isolate-local caches.
 * Oldest insertions are evicted first once `maxEntries` is reached.
 */
export class TtlCache<K, V> {
	private readonly map = new Map<K, { value: V; expiresAt: number }>();

	constructor(private readonly maxEntries: number) {}

	get(key: K, now = Date.now()): V | undefined {
		const hit = this.map.get(key);
		if (!hit) return undefined;
		if (hit.expiresAt <= now) {
			this.map.delete(key);
			return undefined;
		}
		return hit.value;
	}

	set(key: K, value: V, ttlMs: number, now = Date.now()): void {
		if (ttlMs <= 0) return;
		this.map.delete(key);
		if (this.map.size >= this.maxEntries) {
			const oldest = this.map.keys().next();
			if (!oldest.done) this.map.delete(oldest.value);
		}
		this.map.set(key, { value, expiresAt: now + ttlMs });
	}

	delete(key: K): void {
		this.map.delete(key);
	}

	deleteWhere(pred: (key: K) => boolean): void {
		for (const key of this.map.keys()) if (pred(key)) this.map.delete(key);
	}

	clear(): void {
		this.map.clear();
	}
}
