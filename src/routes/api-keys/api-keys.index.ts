import type { Context } from "hono";
import type { AppEnv } from "../../env";
import { createdLocation, createRouter } from "../../lib/create-app";
import { withChangeLog } from "../../middleware/change-log";
import {
	apiKeyView,
	createApiKey,
	getApiKey,
	type KeyGrantor,
	listApiKeys,
	revokeApiKey,
	rotateApiKey,
	updateApiKey,
} from "../../services/api-keys";
import * as routes from "./api-keys.routes";

const orgId = (c: Context<AppEnv>) => c.get("access").organization.id;
const grantor = (c: Context<AppEnv>): KeyGrantor => ({
	actor: c.get("auth").userId,
	permissions: c.get("access").permissions,
	expiresAt: c.get("auth").apiKey?.expiresAt ?? null,
	admin: c.get("access").role === "org:admin",
});

// Each change writes its audit entry and outgoing webhook event (both `api_key.<action>`) in its own
// batch; withChangeLog relays them once it committed.
export const apiKeysRouter = createRouter()
	.openapi(routes.createApiKey, async (c) => {
		const { organization, limits } = c.get("access");
		const { row, secret } = await withChangeLog(c, (log) =>
			createApiKey(c.get("db"), { id: organization.id, plan: organization.plan, apiKeyLimit: limits.apiKeys }, grantor(c), c.req.valid("json"), log),
		);
		return c.json({ ...apiKeyView(row), key: secret }, 201, createdLocation(c, row.id));
	})
	.openapi(routes.listApiKeys, async (c) => {
		const p = await listApiKeys(c.get("db"), orgId(c), c.req.valid("query"));
		return c.json({ data: p.data.map(apiKeyView), nextCursor: p.nextCursor }, 200);
	})
	.openapi(routes.getApiKey, async (c) =>
		c.json(apiKeyView(await getApiKey(c.get("db"), orgId(c), c.req.valid("param").keyId)), 200),
	)
	.openapi(routes.updateApiKey, async (c) => {
		const { keyId } = c.req.valid("param");
		const { after } = await withChangeLog(c, (log) => updateApiKey(c.get("db"), orgId(c), keyId, grantor(c), c.req.valid("json"), log));
		return c.json(apiKeyView(after), 200);
	})
	.openapi(routes.revokeApiKey, async (c) => {
		const { keyId } = c.req.valid("param");
		await withChangeLog(c, (log) => revokeApiKey(c.get("db"), orgId(c), keyId, log));
		return c.body(null, 204);
	})
	.openapi(routes.rotateApiKey, async (c) => {
		const { keyId } = c.req.valid("param");
		const { after, secret } = await withChangeLog(c, (log) => rotateApiKey(c.get("db"), orgId(c), keyId, grantor(c), log));
		return c.json({ ...apiKeyView(after), key: secret }, 200);
	});
