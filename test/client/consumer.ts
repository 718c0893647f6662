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

/** Compile-time equality: `Expect<Equal<A, B>>` is `true` only when A and B are the same type (any is not number). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;

// The declared response headers, read as typed values (generated from the OpenAPI document).
export async function createCategory(orgId: string) {
	const res = await api.api.orgs[":orgId"].categories.$post({ param: { orgId }, json: { name: "Tea", slug: "tea" } });
	// Every status of this operation declares the RateLimit-* headers: readable before narrowing, as numbers.
	const remaining = res.typedHeaders["RateLimit-Remaining"];
	type _remaining = Expect<Equal<typeof remaining, number | undefined>>;
	// @ts-expect-error RateLimit-Limit is a number, not a string
	const limitText: string | undefined = res.typedHeaders["RateLimit-Limit"];
	// @ts-expect-error Location is declared only on the 201: narrow to it first
	void res.typedHeaders.Location;
	if (res.status === 201) {
		const h = res.typedHeaders;
		type _location = Expect<Equal<typeof h.Location, string | undefined>>;
		type _limit = Expect<Equal<typeof h["RateLimit-Limit"], number | undefined>>;
		type _reset = Expect<Equal<typeof h["RateLimit-Reset"], number | undefined>>;
		// X-Request-Id is required on every answer: never undefined.
		type _requestId = Expect<Equal<typeof h["X-Request-Id"], string>>;
		// @ts-expect-error no header the document does not declare
		void h["X-Powered-By"];
		return { location: h.Location, limit: h["RateLimit-Limit"], remaining, reset: h["RateLimit-Reset"], limitText };
	}
	if (res.status === 429) {
		const retry = res.typedHeaders["Retry-After"];
		type _retry = Expect<Equal<typeof retry, number | undefined>>;
		return { retry };
	}
	if (res.status === 401) {
		// Required on a 401.
		const challenge: string = res.typedHeaders["WWW-Authenticate"];
		return { challenge };
	}
	return null;
}

export async function startCheckout(orgId: string) {
	const res = await api.api.orgs[":orgId"].billing.checkout.$post({
		param: { orgId },
		json: { plan: "pro", successUrl: "https://app.example/ok", cancelUrl: "https://app.example/no" },
	});
	if (res.status !== 201) return null;
	// @ts-expect-error this 201 creates no item of a collection: the document declares no Location for it
	void res.typedHeaders.Location;
	const limit = res.typedHeaders["RateLimit-Limit"];
	type _limit = Expect<Equal<typeof limit, number | undefined>>;
	return limit;
}

export async function readHealth() {
	// The health checks are limited per IP: RateLimit-* on their 200 too.
	const res = await api.api.health.$get();
	const remaining: number | undefined = res.typedHeaders["RateLimit-Remaining"];
	// @ts-expect-error a read declares no Location
	void res.typedHeaders.Location;
	return remaining;
}
