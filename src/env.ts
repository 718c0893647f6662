import { z } from "zod";
import type { AuthContext } from "./auth/claims";
import type { Database } from "./db/client";
import type { Logger } from "./lib/logger";
import type { WebhookMessage } from "./queue/messages";
import type { TenantEvent } from "./queue/tenant-events";
import type { OrgAccess } from "./services/access";

/** Every string-valued entry of the generated bindings: wrangler.toml [vars] plus the names in .dev.vars.example. */
type SettingName = { [K in keyof Cloudflare.Env]: Cloudflare.Env[K] extends string ? K : never }[keyof Cloudflare.Env];

/**
 * The Worker's bindings as `wrangler types` generates them (worker-configuration.d.ts, `npm run cf-typegen`),
 * narrowed where the generator cannot say more: queues carry their message types, and vars/secrets may be
 * unset in an environment (parseEnv validates them).
 */
export type Env = Omit<Cloudflare.Env, SettingName | "WEBHOOK_QUEUE" | "TENANT_EVENTS"> &
	Partial<Pick<Cloudflare.Env, SettingName>> & {
		WEBHOOK_QUEUE: Queue<WebhookMessage>;
		TENANT_EVENTS: Queue<TenantEvent>;
	};

export type AppEnv = {
	Bindings: Env;
	Variables: {
		requestId: string;
		config: Config;
		db: Database;
		logger: Logger;
		auth: AuthContext;
		access: OrgAccess;
	};
};

const optionalString = z
	.string()
	.optional()
	.transform((v) => (v?.trim() ? v.trim() : undefined));

const list = z
	.string()
	.optional()
	.transform((v) =>
		(v ?? "")
			.split(",")
			.map((s) => s.trim())
			.filter(Boolean),
	);

const flag = (fallback: boolean) =>
	z
		.string()
		.optional()
		.transform((v) => (v === undefined || v.trim() === "" ? fallback : /^(1|true|yes|on)$/i.test(v.trim())));

// One entry per generated var/secret, and none that is not declared (satisfies checks both ways).
const configSchema = z.object({
	CLERK_JWKS_URL: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),
	CLERK_JWT_KEY: optionalString.pipe(
		z
			.string()
			.refine((v) => v.includes("-----BEGIN PUBLIC KEY-----"), "must be a PEM public key")
			.optional(),
	),
	CLERK_ISSUER: optionalString,
	CLERK_AUTHORIZED_PARTIES: list,
	CLERK_WEBHOOK_SECRET: optionalString.pipe(z.string().startsWith("whsec_", "must start with whsec_").optional()),
	DEV_JWT_PUBLIC_JWK: optionalString,
	OPERATOR_USER_IDS: list,
	LOG_LEVEL: z.enum(["debug", "info", "warn", "error", "silent"]).optional().default("info").catch("info"),
	RATE_LIMIT_MODE: z.enum(["lease", "strict", "off"]).optional().default("lease").catch("lease"),
	RATE_LIMIT_FAIL_OPEN_READS: flag(true),
	RATE_LIMIT_FAIL_OPEN_WRITES: flag(false),
	RAZORPAY_KEY_ID: optionalString,
	RAZORPAY_KEY_SECRET: optionalString,
	RAZORPAY_WEBHOOK_SECRET: optionalString,
	STRIPE_SECRET_KEY: optionalString,
	STRIPE_WEBHOOK_SECRET: optionalString,
} satisfies Record<SettingName, z.ZodType>);

export type Config = z.infer<typeof configSchema>;

export class EnvError extends Error {
	constructor(readonly issues: string[]) {
		super(`invalid environment: ${issues.join("; ")}`);
	}
}

// Parsed once per env object: vars are fixed for the isolate's lifetime, and a
// WeakMap never outlives the bindings it is keyed by.
const parsed = new WeakMap<object, Config>();

/** Validates vars and secrets; throws EnvError naming each bad variable (never its value). */
export function parseEnv(env: Env): Config {
	const hit = parsed.get(env);
	if (hit) return hit;
	const result = configSchema.safeParse(env);
	if (!result.success) {
		throw new EnvError(result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`));
	}
	parsed.set(env, result.data);
	return result.data;
}
