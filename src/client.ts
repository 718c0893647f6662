import { hc } from "hono/client";
import type { AppType } from "./app";

/**
 * Typed client for TypeScript frontends (types only travel; no server code is bundled). Published as
 * `edge-tenant-backend/client` with self-contained declarations (scripts/client-types.mjs, `npm run build:client`).
 * @example
 * const api = createClient("https://api.example.com", async () => (await clerk.session?.getToken()) ?? null);
 * const res = await api.api.orgs[":orgId"].members.$get({ param: { orgId }, query: { limit: "20" } });
 * if (res.ok) { const { data, nextCursor } = await res.json(); }
 */
export function createClient(baseUrl: string, getToken?: () => Promise<string | null | undefined>, fetchImpl?: typeof fetch) {
	return hc<AppType>(baseUrl, {
		fetch: fetchImpl,
		headers: async (): Promise<Record<string, string>> => {
			const token = await getToken?.();
			return token ? { authorization: `Bearer ${token}` } : {};
		},
	});
}

export type { AppType };
