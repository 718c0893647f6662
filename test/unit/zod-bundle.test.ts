import { z as openapiZ } from "@hono/zod-openapi";
import { describe, expect, it } from "vitest";
import { z } from "zod";

/** "zod" resolves to src/lib/zod (as in the Worker bundle): the tests run the namespace that ships. */
describe("the Worker's zod namespace", () => {
	it("is the one @hono/zod-openapi extends and re-exports, without locales, the compiler or the JSON Schema reader", () => {
		expect(openapiZ).toBe(z);
		for (const dropped of ["locales", "core", "compile", "fromJSONSchema", "ipv6", "jwt"]) expect(dropped in z, dropped).toBe(false);
		expect(typeof z.string().openapi).toBe("function");
	});

	it("has no JSON Schema generator (the API document is built in Node), and parsing does not need one", () => {
		const schema = z.object({ name: z.string().min(1), n: z.number().int().nullable() });
		expect(() => schema.toJSONSchema()).toThrow(/not in the Worker bundle/);
		expect(() => z.string().min(2).minLength).toThrow(/not in the Worker bundle/);
		expect(schema.parse({ name: "a", n: null })).toEqual({ name: "a", n: null });
	});

	it("validates with English messages and keeps every schema method", () => {
		const r = z.object({ n: z.number().int().optional(), s: z.string().min(2) }).safeParse({ n: 1.5, s: 3 });
		expect(r.success).toBe(false);
		expect(r.error?.issues.map((i) => [i.path.join("."), i.message])).toEqual([
			["n", "Invalid input: expected int, received number"],
			["s", "Invalid input: expected string, received number"],
		]);
		expect(z.string().uuid().safeParse("x").error?.issues[0]?.message).toBe("Invalid UUID");
		expect(z.coerce.number().parse("42")).toBe(42);
	});
});
