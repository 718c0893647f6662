import { describe, expect, it } from "vitest";
import { createApp } from "../../src/app";
import { signToken } from "../helpers/jwt";
import { call } from "../helpers/request";

/** Routes that take no session token (they have their own proof: provider signatures, or none). */
const PUBLIC = new Set([
	"GET /api/health",
	"GET /api/health/ready",
	"POST /api/webhooks/clerk",
	"POST /api/webhooks/razorpay",
	"POST /api/webhooks/stripe",
]);

// Every mounted API route, from the app itself: a new route is covered without editing this file.
const routes = [
	...new Map(
		createApp()
			.routes.filter((r) => r.method !== "ALL" && r.path.startsWith("/api/") && r.path !== "/api/openapi.json")
			.map((r) => [`${r.method} ${r.path}`, r]),
	).values(),
]
	.filter((r) => !PUBLIC.has(`${r.method} ${r.path}`))
	.map((r) => ({ method: r.method, path: r.path.replace(/:(\w+)/g, (_, p: string) => `${p}_1`) }));

describe.each(routes)("$method $path", ({ method, path }) => {
	const body = method === "GET" || method === "DELETE" ? undefined : {};

	it("without a token: 401 problem+json with a bare Bearer challenge", async () => {
		const res = await call(method, path, { body });
		expect(res.status, res.text).toBe(401);
		expect(res.headers.get("www-authenticate")).toBe("Bearer");
		expect(res.headers.get("content-type")).toBe("application/problem+json");
	});

	it("with an expired, a foreign-signed or a malformed token: 401 invalid_token", async () => {
		const now = Math.floor(Date.now() / 1000);
		for (const token of [
			await signToken({ issuedAt: now - 600, expiresIn: 60 }),
			await signToken({ key: "attacker" }),
			"not.a.token",
		]) {
			const res = await call(method, path, { token, body });
			expect(res.status, res.text).toBe(401);
			expect(res.headers.get("www-authenticate")).toBe('Bearer error="invalid_token"');
		}
	});
});

it("covers every protected route", () => {
	expect(routes.length).toBeGreaterThanOrEqual(30);
});
