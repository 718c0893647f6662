import { z } from "zod";
import type { AuthContext } from "./auth/claims";
import type { Database } from "./db/client";
import type { Logger } from "./lib/logger";
import type { TraceContext } from "./lib/trace";
import type { WebhookMessage } from "./queue/messages";
import type { TenantEvent } from "./queue/tenant-events";
import type { OrgAccess } from "./services/access";
import type { StoreHost } from "./tenant-store/host";

/** Every string-valued entry of the generated bindings: wrangler.toml [vars] plus the names in .dev.vars.example. */
type SettingName = { [K in keyof Cloudflare.Env]: Cloudflare.Env[K] extends string ? K : never }[keyof Cloudflare.Env];

/**
 * The Worker's bindings as `wrangler types` generates them (worker-configuration.d.ts, `npm run cf-typegen`),
 * narrowed where the generator cannot say more: queues carry their message types, vars/secrets may be
 * unset in an environment (parseEnv validates them), and the metrics dataset may be absent (lib/metrics.ts
 * then writes nothing).
 */
export type Env = Omit<Cloudflare.Env, SettingName | "WEBHOOK_QUEUE" | "TENANT_EVENTS" | "METRICS"> &
	Partial<Pick<Cloudflare.Env, SettingName | "METRICS">> & {
		WEBHOOK_QUEUE: Queue<WebhookMessage>;
		TENANT_EVENTS: Queue<TenantEvent>;
	};

export type AppEnv = {
	Bindings: Env;
	Variables: {
		requestId: string;
		/** This request's span of its W3C trace (lib/trace.ts): continued from `traceparent`, else a new trace. */
		trace: TraceContext;
		config: Config;
		db: Database;
		logger: Logger;
		auth: AuthContext;
		access: OrgAccess;
		/** Set only while a tenant store object serves the request (tenant-store/object.ts). */
		store: StoreHost | undefined;
		/** The organization an operator action concerned when its path does not name it (a replayed event's; middleware/operator-actions.ts). */
		actionOrganizationId: string | null | undefined;
	};
};

const optionalString = z
	.string()
	.optional()
	.transform((v) => (v?.trim() ? v.trim() : undefined));

/**
 * Secrets are used exactly as given (a key with surrounding whitespace is still that key); only an
 * empty or whitespace-only value counts as unset.
 */
const secret = z
	.string()
	.optional()
	.transform((v) => (v?.trim() ? v : undefined));

const httpUrl = z.url({ protocol: /^https?$/ });

/** A base URL (no trailing slash), defaulting to the provider's real host. */
const apiBase = (fallback: string) =>
	optionalString.pipe(httpUrl.optional()).transform((v) => (v ?? fallback).replace(/\/+$/, ""));

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

const webhookSecret = secret.pipe(z.string().startsWith("whsec_", "must start with whsec_").optional());

/**
 * Clerk's publishable key (`pk_test_…` / `pk_live_…`) carries its Frontend API host, base64-encoded
 * with a trailing `$`, as Clerk's SDKs decode it.
 */
const publishableKey = optionalString.transform((v, ctx) => {
	if (v === undefined) return undefined;
	const m = /^pk_(?:test|live)_([A-Za-z0-9+/=_-]+)$/.exec(v);
	let host: string;
	try {
		host = m ? atob((m[1] as string).replaceAll("-", "+").replaceAll("_", "/")) : "";
	} catch {
		host = "";
	}
	if (!host.endsWith("$") || !/^[a-z0-9.-]+\.[a-z]{2,}$/i.test(host.slice(0, -1))) {
		ctx.addIssue({ code: "custom", message: "must be a Clerk publishable key (pk_test_… or pk_live_…)" });
		return z.NEVER;
	}
	return { key: v, frontendApi: host.slice(0, -1) };
});

const RAZORPAY_DEFAULT_BASE = "https://api.razorpay.com";
const STRIPE_DEFAULT_BASE = "https://api.stripe.com";

// One entry per generated var/secret, and none that is not declared (satisfies checks both ways).
const configShape = {
	CLERK_JWKS_URL: optionalString.pipe(httpUrl.optional()),
	CLERK_JWT_KEY: optionalString.pipe(
		z
			.string()
			.refine((v) => v.includes("-----BEGIN PUBLIC KEY-----"), "must be a PEM public key")
			.optional(),
	),
	CLERK_ISSUER: optionalString,
	CLERK_PUBLISHABLE_KEY: publishableKey,
	CLERK_AUTHORIZED_PARTIES: list,
	CLERK_WEBHOOK_SECRET: webhookSecret,
	CLERK_WEBHOOK_SIGNING_SECRET: webhookSecret,
	CLERK_SECRET_KEY: secret.pipe(z.string().startsWith("sk_", "must start with sk_").optional()),
	DEV_JWT_PUBLIC_JWK: optionalString,
	OPERATOR_USER_IDS: list,
	LOG_LEVEL: z.enum(["debug", "info", "warn", "error", "silent"]).optional().default("info").catch("info"),
	RATE_LIMIT_MODE: z.enum(["lease", "strict", "off"]).optional().default("lease").catch("lease"),
	RATE_LIMIT_FAIL_OPEN_READS: flag(true),
	RATE_LIMIT_FAIL_OPEN_WRITES: flag(false),
	/** Days raw provider webhook payloads, delivery logs and (D1) idempotency keys are kept (services/retention.ts). */
	EVENT_RETENTION_DAYS: optionalString.pipe(
		z
			.string()
			.regex(/^[1-9][0-9]{0,3}$/, "a whole number of days from 1 to 9999")
			.transform(Number)
			.optional(),
	),
	RAZORPAY_API_BASE: apiBase(RAZORPAY_DEFAULT_BASE),
	RAZORPAY_KEY_ID: optionalString,
	RAZORPAY_KEY_SECRET: secret,
	RAZORPAY_WEBHOOK_SECRET: secret,
	// The API paths (/v1/…) are appended to it, after its own path if it has one (a proxy under a prefix).
	STRIPE_API_BASE: apiBase(STRIPE_DEFAULT_BASE),
	STRIPE_SECRET_KEY: secret,
	STRIPE_WEBHOOK_SECRET: secret,
	// A Billing Meter's event_name (Stripe allows 100 characters) and the metered price on it.
	STRIPE_METER_EVENT_NAME: optionalString.pipe(z.string().max(100, "at most 100 characters").optional()),
	STRIPE_METERED_PRICE_ID: optionalString.pipe(z.string().startsWith("price_", "must start with price_").optional()),
} satisfies Record<SettingName, z.ZodType>;

/**
 * Clerk's names resolved: CLERK_WEBHOOK_SIGNING_SECRET (Clerk's current name) stands in for
 * CLERK_WEBHOOK_SECRET (two different values are a misconfiguration), and a publishable key supplies
 * the JWKS URL and issuer that are not set explicitly.
 */
const configSchema = z.object(configShape).transform((raw, ctx) => {
	const { CLERK_WEBHOOK_SECRET: primary, CLERK_WEBHOOK_SIGNING_SECRET: alias, CLERK_PUBLISHABLE_KEY: pk } = raw;
	if (primary !== undefined && alias !== undefined && primary !== alias) {
		for (const name of ["CLERK_WEBHOOK_SECRET", "CLERK_WEBHOOK_SIGNING_SECRET"]) {
			ctx.addIssue({ code: "custom", path: [name], message: "set to two different values: keep one" });
		}
		return z.NEVER;
	}
	const fapi = pk ? `https://${pk.frontendApi}` : undefined;
	return {
		...raw,
		CLERK_WEBHOOK_SECRET: primary ?? alias,
		CLERK_JWKS_URL: raw.CLERK_JWKS_URL ?? (fapi && `${fapi}/.well-known/jwks.json`),
		CLERK_ISSUER: raw.CLERK_ISSUER ?? fapi,
	};
});

export type Config = z.output<typeof configSchema>;

export class EnvError extends Error {
	constructor(readonly issues: string[]) {
		super(`invalid environment: ${issues.join("; ")}`);
	}
}

interface ConfigState {
	/** The configuration with every invalid variable treated as unset. */
	config: Config;
	/** `NAME: message` per invalid variable (never its value). */
	issues: string[];
}

// Parsed once per env object: vars are fixed for the isolate's lifetime, and a
// WeakMap never outlives the bindings it is keyed by.
const parsed = new WeakMap<object, ConfigState>();

const MAX_PASSES = 4;

/**
 * Validates vars and secrets without throwing: each invalid variable is reported by name and left
 * out of the configuration, so the routes that need no configuration (liveness, readiness, the API
 * document) still answer.
 */
export function configState(env: Env): ConfigState {
	const hit = parsed.get(env);
	if (hit) return hit;
	const input: Record<string, unknown> = { ...env };
	const issues: string[] = [];
	for (let pass = 0; pass < MAX_PASSES; pass++) {
		const result = configSchema.safeParse(input);
		if (result.success) {
			const state = { config: result.data, issues };
			parsed.set(env, state);
			return state;
		}
		for (const i of result.error.issues) {
			const name = String(i.path[0] ?? "(config)");
			issues.push(`${name}: ${i.message}`);
			delete input[name];
		}
	}
	throw new EnvError(issues);
}

/** The names of the misconfigured variables (empty when the configuration is valid). */
export function misconfigured(env: Env): string[] {
	return [...new Set(configState(env).issues.map((i) => i.split(":")[0] as string))];
}

/**
 * Variables a serving deployment cannot do without: session tokens need an issuer and a key source
 * (the local development key counts). Reported by the readiness probe, never thrown here.
 */
export function missingRequired(config: Config): string[] {
	const missing: string[] = [];
	if (!config.CLERK_ISSUER) missing.push("CLERK_ISSUER");
	if (!config.CLERK_JWKS_URL && !config.CLERK_JWT_KEY && !config.DEV_JWT_PUBLIC_JWK) missing.push("CLERK_JWKS_URL");
	return missing;
}

/** Validates vars and secrets; throws EnvError naming each bad variable (never its value). */
export function parseEnv(env: Env): Config {
	const { config, issues } = configState(env);
	if (issues.length > 0) throw new EnvError(issues);
	return config;
}
