import { z } from "zod";
import type { AuthContext } from "./auth/claims";
import type { Database } from "./db/client";
import type { Logger } from "./lib/logger";
import type { OrgAccess } from "./services/access";

/** Bindings declared in wrangler.toml plus vars/secrets (see README "Configuration"). */
export interface Env {
	DB: D1Database;
	WEBHOOK_QUEUE: Queue<unknown>;
	TENANT_EVENTS: Queue<unknown>;
	USAGE: DurableObjectNamespace<import("./durable-objects/usage-counter").UsageCounter>;
	RATE_LIMITER: DurableObjectNamespace<import("./durable-objects/rate-limiter").RateLimiter>;
	CLERK_JWKS_URL?: string;
	CLERK_JWT_KEY?: string;
	CLERK_ISSUER?: string;
	CLERK_AUTHORIZED_PARTIES?: string;
	CLERK_WEBHOOK_SECRET?: string;
	DEV_JWT_PUBLIC_JWK?: string;
	OPERATOR_USER_IDS?: string;
	LOG_LEVEL?: string;
	RATE_LIMIT_MODE?: string;
	RATE_LIMIT_FAIL_OPEN_READS?: string;
	RATE_LIMIT_FAIL_OPEN_WRITES?: string;
	RAZORPAY_KEY_ID?: string;
	RAZORPAY_KEY_SECRET?: string;
	RAZORPAY_WEBHOOK_SECRET?: string;
	STRIPE_SECRET_KEY?: string;
	STRIPE_WEBHOOK_SECRET?: string;
}

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
});

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
