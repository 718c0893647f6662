import { createClient } from "edge-tenant-backend/client";

// getToken: e.g. () => clerk.session?.getToken() with Clerk's browser SDK
export const listMembers = async (getToken: () => Promise<string | null>, orgId: string) => {
	const api = createClient("https://api.example.com", getToken);
	const res = await api.api.orgs[":orgId"].members.$get({ param: { orgId }, query: { limit: "20" } });
	if (!res.ok) throw new Error(`GET members: ${res.status}`);
	const { data, nextCursor } = await res.json();
	// The response headers the document declares, typed: RateLimit-* as numbers (absent when not limited).
	const remaining = res.typedHeaders["RateLimit-Remaining"];
	return { emails: data.map((m) => m.email), nextCursor, remaining };
};
