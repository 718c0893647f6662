import { createRoute, z } from "@hono/zod-openapi";
import { API_KEY_CACHE_TTL_MS, ROTATION_GRACE_MS } from "../../auth/api-key";
import { requirePermission } from "../../middleware/authorize";
import { tenantMiddleware } from "../../middleware/tenant";
import { CursorQuery, jsonContent, orgErrors, problem } from "../../openapi";

const middleware = tenantMiddleware(requirePermission("org:api_keys:manage"));
const errors = {
	...orgErrors,
	402: problem("The plan's number of live API keys is reached, or the caller's seat is beyond the plan's seats"),
	409: problem("Conflict"),
};
const param = (name: string) =>
	z
		.string()
		.min(1)
		.max(128)
		.openapi({ param: { name, in: "path" } });
const OrgParam = z.object({ orgId: param("orgId") });
const KeyParams = z.object({ orgId: param("orgId"), keyId: param("keyId") });

const name = z.string().trim().min(1).max(100).openapi({ example: "CI deploys" });
const permissions = z
	.array(z.string().min(1).max(128))
	.max(50)
	.openapi({
		description:
			OPENAPI_TEXT ? "Permission keys from the organization's catalogue (e.g. org:products:read); never more than the caller holds (403)" : undefined,
		example: ["org:products:read"],
	});
const rateLimitPerMinute = z
	.number()
	.int()
	.min(1)
	.max(100_000)
	.openapi({ description: OPENAPI_TEXT ? "The key's own requests per minute; default (null) the plan's per-user limit" : undefined });

const ApiKeySchema = z
	.object({
		id: z.string(),
		name: z.string(),
		prefix: z.string().openapi({ example: "sk_live_" }),
		last4: z.string().openapi({ description: OPENAPI_TEXT ? "The secret's last 4 characters" : undefined }),
		permissions: z.array(z.string()),
		rateLimitPerMinute: z.number().int().nullable(),
		createdBy: z.string().openapi({ description: OPENAPI_TEXT ? "The creating principal: a user id or apikey:<id>" : undefined }),
		createdAt: z.number().int(),
		updatedAt: z.number().int(),
		lastUsedAt: z.number().int().nullable().openapi({ description: OPENAPI_TEXT ? "Written behind: up to a minute stale" : undefined }),
		expiresAt: z.number().int().nullable(),
		rotatedAt: z.number().int().nullable(),
		previousKeyExpiresAt: z
			.number()
			.int()
			.nullable()
			.openapi({ description: OPENAPI_TEXT ? "Until when the secret replaced by the last rotation still works" : undefined }),
	})
	.openapi("ApiKey");
const secret = z.string().openapi({
	description: OPENAPI_TEXT ? "The secret, shown only in this response: sk_live_ + base62 of 32 random bytes (51 characters)" : undefined,
	example: "sk_live_4f9Qe2mWQ0n8yJbVZk1r7TgHcL3xPa6sDuEoNi5tKvB",
});
const ApiKeyCreatedSchema = ApiKeySchema.extend({ key: secret }).openapi("ApiKeyCreated");

const json = <T extends z.ZodType>(schema: T) => ({ required: true, content: { "application/json": { schema } } });
const CACHE_S = API_KEY_CACHE_TTL_MS / 1000;
const GRACE_S = ROTATION_GRACE_MS / 1000;
/** Every change is audited and published to outgoing webhooks under the same name, never with the secret or its hash. */
const published = (event: string) =>
	`Audited as \`${event}\` (actor: the caller, a user id or apikey:<id>) and sent to webhook endpoints subscribed to ` +
	`\`${event}\` with data \`{id, name, prefix, last4, permissions, expiresAt, actor}\`: never the secret or its hash.`;
const base = { tags: ["api keys"], security: [{ bearer: [] }], middleware };

export const createApiKey = createRoute({
	...base,
	method: "post",
	path: "/api/orgs/{orgId}/api-keys",
	summary: OPENAPI_TEXT ? "Create an API key (org:api_keys:manage); the secret is returned once" : undefined,
	description: OPENAPI_TEXT
		? [
		"The secret (`key`) is `sk_live_` + base62 of 32 random bytes, 51 characters (secret scanners match " +
			"`sk_live_[0-9A-Za-z]{43}`); it is in this answer only: the service stores its SHA-256 and shows `prefix` + `last4`.",
		"A key calls this organization's /api/orgs/{orgId}/… routes (and GET /api/me) as principal `apikey:<id>` with exactly " +
			"its permissions and no role (role-only routes refuse it); see the bearer scheme. `permissions` must be known (400) " +
			"and held by the caller (403): a key that manages keys hands out at most its own.",
		"Live keys (not revoked, not expired) per plan: free 2, pro 50, enterprise 1,000 (402 past it).",
		published("api_key.created"),
	].join("\n\n")
		: undefined,
	request: {
		params: OrgParam,
		body: json(
			z.strictObject({
				name,
				permissions,
				expiresAt: z
					.number()
					.int()
					.positive()
					.optional()
					.openapi({ description: OPENAPI_TEXT ? "Epoch ms; must be in the future. A key created by an expiring key expires no later than it (capped, or set to it when absent)" : undefined }),
				rateLimitPerMinute: rateLimitPerMinute.optional(),
			}),
		),
	},
	responses: { 201: jsonContent(ApiKeyCreatedSchema, "Created; `key` is the secret"), ...errors },
});
export const listApiKeys = createRoute({
	...base,
	method: "get",
	path: "/api/orgs/{orgId}/api-keys",
	summary: OPENAPI_TEXT ? "The organization's keys that are not revoked, oldest first (no secrets)" : undefined,
	description: OPENAPI_TEXT ? "Each key shows `prefix` + `last4` to recognise it, never the secret or its hash; expired keys are listed (expiresAt) until revoked." : undefined,
	request: { params: OrgParam, query: CursorQuery },
	responses: {
		200: jsonContent(z.object({ data: z.array(ApiKeySchema), nextCursor: z.string().nullable() }).openapi("ApiKeyPage"), "Keys"),
		...errors,
	},
});
export const getApiKey = createRoute({
	...base,
	method: "get",
	path: "/api/orgs/{orgId}/api-keys/{keyId}",
	summary: OPENAPI_TEXT ? "A key (no secret); 404 once revoked" : undefined,
	description: OPENAPI_TEXT ? "`lastUsedAt` is written behind (at most once a minute per key per isolate), so it may lag by up to a minute." : undefined,
	request: { params: KeyParams },
	responses: { 200: jsonContent(ApiKeySchema, "The key"), ...errors },
});
export const updateApiKey = createRoute({
	...base,
	method: "patch",
	path: "/api/orgs/{orgId}/api-keys/{keyId}",
	summary: OPENAPI_TEXT ? "Change exactly the fields sent: name, permissions, rateLimitPerMinute (null: the plan's default)" : undefined,
	description: OPENAPI_TEXT
		? [
		`Takes effect at once in the isolate that answers and within ${CACHE_S} s in every other (key rows are cached per isolate ` +
			`for ${CACHE_S} s). New permissions must be known (400) and held by the caller (403).`,
		published("api_key.updated"),
	].join("\n\n")
		: undefined,
	request: {
		params: KeyParams,
		body: json(
			z
				.strictObject({ name: name.optional(), permissions: permissions.optional(), rateLimitPerMinute: rateLimitPerMinute.nullable().optional() })
				.refine((v) => Object.keys(v).length > 0, "at least one field is required"),
		),
	},
	responses: { 200: jsonContent(ApiKeySchema, "Updated"), ...errors },
});
export const revokeApiKey = createRoute({
	...base,
	method: "delete",
	path: "/api/orgs/{orgId}/api-keys/{keyId}",
	summary: OPENAPI_TEXT ? `Revoke a key: refused everywhere within ${CACHE_S} s` : undefined,
	description: OPENAPI_TEXT
		? [
		`Both its secrets (the current one, and one still in a rotation's grace period) are refused (401) at once by ` +
			`the isolate that answers and within ${CACHE_S} s by every other. The key then answers 404, leaves the list and ` +
			"no longer counts against the plan's number of keys.",
		published("api_key.revoked"),
	].join("\n\n")
		: undefined,
	request: { params: KeyParams },
	responses: { 204: { description: OPENAPI_TEXT ? "Revoked" : undefined }, ...errors },
});
export const rotateApiKey = createRoute({
	...base,
	method: "post",
	path: "/api/orgs/{orgId}/api-keys/{keyId}/rotate",
	summary: OPENAPI_TEXT ? `A new secret (returned once); the replaced one keeps working for ${GRACE_S} s` : undefined,
	description: OPENAPI_TEXT
		? [
		`The new secret works at once. The replaced secret stays valid for a grace period of ${GRACE_S} s (previousKeyExpiresAt), ` +
			`time to deploy the new one; rotating again ends an earlier grace period at once (in other isolates within ${CACHE_S} s).`,
		"The caller must hold every permission the key has; a caller other than an admin rotates only itself (a key) and the keys " +
			"it made (directly or through its keys); an expiring key only keys that expire no later than it does (403 otherwise).",
		published("api_key.rotated"),
	].join("\n\n")
		: undefined,
	request: { params: KeyParams },
	responses: { 200: jsonContent(ApiKeyCreatedSchema, "Rotated; `key` is the new secret"), ...errors },
});
