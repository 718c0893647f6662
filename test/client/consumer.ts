// A frontend using the typed client: must type-check under test/client/tsconfig.json (strict, DOM, no workers
// types). `npx tsc -p test/client` in .ci/run; the README's snippet is readme-snippet.ts (scripts/check-client.mjs).
import { type AppType, createClient } from "edge-tenant-backend/client";
import type { hc, InferResponseType } from "hono/client";

const api = createClient("http://localhost:8787", async () => "token", fetch);

export async function whoAmI(): Promise<string | null> {
	const res = await api.api.me.$get();
	if (!res.ok) return null;
	const me = await res.json();
	// A session answers with the user; an API key (sk_live_...) with user null and the key instead.
	if (!me.user) return null;
	const email: string | null = me.user.email;
	// @ts-expect-error the types are real, not `any`: /api/me has no such field
	void me.user.password;
	return me.organization ? `${email ?? me.user.id} in ${me.organization.id} as ${me.organization.role}` : email;
}

export async function firstPage(orgId: string) {
	// Optional query parameters stay optional: no query at all, or only some of them.
	const all = await api.api.orgs[":orgId"].members.$get({ param: { orgId } });
	const some = await api.api.orgs[":orgId"].products.$get({ param: { orgId }, query: { status: "active" } });
	// @ts-expect-error a JSON body is checked: priceMinor is a number
	await api.api.orgs[":orgId"].products.$post({ param: { orgId }, json: { name: "x", sku: "y", priceMinor: "1", currency: "INR" } });
	// @ts-expect-error orgId is a required path parameter
	await api.api.orgs[":orgId"].members.$get({ param: {} });
	return [all.status, some.status];
}

export async function createProduct(orgId: string) {
	const res = await api.api.orgs[":orgId"].products.$post({
		param: { orgId },
		json: { name: "Mug", sku: "MUG-1", priceMinor: 1200, currency: "INR" },
	});
	if (res.status === 201) return (await res.json()).id;
	// Error answers are in the union too, typed as problem+json.
	if (res.status === 409 || res.status === 403) return (await res.json()).code;
	if (!res.ok) {
		const problem = await res.json();
		// @ts-expect-error a problem has no product fields
		return problem.sku;
	}
	return null;
}

// hono's helpers work on the exported types too.
type Health = InferResponseType<ReturnType<typeof hc<AppType>>["api"]["health"]["$get"], 200>;
export const healthStatus = (h: Health): "ok" => h.status;
