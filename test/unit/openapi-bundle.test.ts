import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { describe, expect, it } from "vitest";

/**
 * "@asteasolutions/zod-to-openapi" resolves to src/lib/zod-to-openapi (as in the Worker bundle): the tests run
 * the library that ships, with its registry and without its document generator.
 */
describe("the Worker's OpenAPI library", () => {
	const Item = z.object({ id: z.number().int() }).openapi("BundleTestItem");
	const route = createRoute({
		method: "get",
		path: "/items/{id}",
		request: { params: z.object({ id: z.coerce.number().int().openapi({ param: { name: "id", in: "path" } }) }) },
		responses: { 200: { description: "The item", content: { "application/json": { schema: Item } } } },
	});

	it("registers routes and validates requests, as @hono/zod-openapi needs", async () => {
		const app = new OpenAPIHono().openapi(route, (c) => c.json({ id: c.req.valid("param").id }, 200));
		expect(app.openAPIRegistry.definitions).toMatchObject([{ type: "route", route: { method: "get", path: "/items/{id}" } }]);
		const ok = await app.request("/items/7");
		expect(ok.status).toBe(200);
		expect(await ok.json()).toEqual({ id: 7 });
		expect((await app.request("/items/x")).status).toBe(400);
	});

	it("has no document generator: GET /api/openapi.json serves the document built with the real library", () => {
		const app = new OpenAPIHono().openapi(route, (c) => c.json({ id: 1 }, 200));
		expect(() => app.getOpenAPI31Document({ openapi: "3.1.0", info: { title: "t", version: "1" } })).toThrow(/no OpenAPI generator/);
	});
});
