import type { Context } from "hono";
import type { ApiKeyRow } from "../../db/schema";
import type { AppEnv } from "../../env";
import { createdLocation, createRouter } from "../../lib/create-app";
import { requestMeta } from "../../middleware/request-meta";
import {
	apiKeyEventData,
	apiKeyView,
	createApiKey,
	getApiKey,
	type KeyGrantor,
	listApiKeys,
	revokeApiKey,
	rotateApiKey,
	updateApiKey,
} from "../../services/api-keys";
import { type AuditInput, publishChange } from "../../services/events-bus";
import * as routes from "./api-keys.routes";

const orgId = (c: Context<AppEnv>) => c.get("access").organization.id;
const grantor = (c: Context<AppEnv>): KeyGrantor => ({ actor: c.get("auth").userId, permissions: c.get("access").permissions });
/**
 * Audit entry and outgoing webhook event (both `api_key.<action>`) for a committed change of a key:
 * never its secret or hash. `row` is the key after the change (as it was, for a revocation).
 */
const publishKeyChange = (
	c: Context<AppEnv>,
	action: "created" | "updated" | "rotated" | "revoked",
	row: ApiKeyRow,
	change: Pick<AuditInput, "before" | "after">,
) => {
	const meta = requestMeta(c);
	return publishChange(
		c.env,
		meta,
		c.get("logger"),
		{ organizationId: orgId(c), action: `api_key.${action}`, targetType: "api_key", targetId: row.id, ...change },
		{ type: `api_key.${action}`, data: apiKeyEventData(row, meta.actor) },
	);
};

export const apiKeysRouter = createRouter()
	.openapi(routes.createApiKey, async (c) => {
		const { organization, limits } = c.get("access");
		const { row, secret } = await createApiKey(
			c.get("db"),
			{ id: organization.id, plan: organization.plan, apiKeyLimit: limits.apiKeys },
			grantor(c),
			c.req.valid("json"),
		);
		const view = apiKeyView(row);
		await publishKeyChange(c, "created", row, { after: view });
		return c.json({ ...view, key: secret }, 201, createdLocation(c, row.id));
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
		const { before, after } = await updateApiKey(c.get("db"), orgId(c), keyId, grantor(c), c.req.valid("json"));
		await publishKeyChange(c, "updated", after, { before: apiKeyView(before), after: apiKeyView(after) });
		return c.json(apiKeyView(after), 200);
	})
	.openapi(routes.revokeApiKey, async (c) => {
		const { keyId } = c.req.valid("param");
		const before = await revokeApiKey(c.get("db"), orgId(c), keyId);
		await publishKeyChange(c, "revoked", before, { before: apiKeyView(before) });
		return c.body(null, 204);
	})
	.openapi(routes.rotateApiKey, async (c) => {
		const { keyId } = c.req.valid("param");
		const { before, after, secret } = await rotateApiKey(c.get("db"), orgId(c), keyId);
		const view = apiKeyView(after);
		await publishKeyChange(c, "rotated", after, { before: apiKeyView(before), after: view });
		return c.json({ ...view, key: secret }, 200);
	});
