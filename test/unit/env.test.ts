import { describe, expect, it } from "vitest";
import { EnvError, type Env, parseEnv } from "../../src/env";
import { callWithEnv, type Problem } from "../helpers/request";

const base = {} as Env;

describe("parseEnv", () => {
	it("applies defaults and splits lists", () => {
		const c = parseEnv({ ...base, CLERK_AUTHORIZED_PARTIES: " https://a.example , https://b.example ,", OPERATOR_USER_IDS: "user_1" });
		expect(c).toMatchObject({
			CLERK_AUTHORIZED_PARTIES: ["https://a.example", "https://b.example"],
			OPERATOR_USER_IDS: ["user_1"],
			LOG_LEVEL: "info",
			RATE_LIMIT_MODE: "lease",
			RATE_LIMIT_FAIL_OPEN_READS: true,
			RATE_LIMIT_FAIL_OPEN_WRITES: false,
		});
		expect(parseEnv({ ...base, CLERK_ISSUER: "  " }).CLERK_ISSUER).toBeUndefined();
	});

	it.each([
		["CLERK_JWKS_URL", "not a url"],
		["CLERK_JWKS_URL", "ftp://clerk.example/jwks"],
		["CLERK_JWT_KEY", "abc"],
		["CLERK_WEBHOOK_SECRET", "secret"],
		["CLERK_WEBHOOK_SIGNING_SECRET", "secret"],
		["CLERK_SECRET_KEY", "pk_live_oops"],
		["CLERK_PUBLISHABLE_KEY", "pk_test_bm90IGEgaG9zdA"],
		["RAZORPAY_API_BASE", "ftp://rzp.example"],
		["STRIPE_API_BASE", "ftp://stripe.example"],
	])("refuses %s=%s, naming the variable but not the value", (name, value) => {
		let err: unknown;
		try {
			parseEnv({ ...base, [name]: value } as Env);
		} catch (e) {
			err = e;
		}
		expect(err).toBeInstanceOf(EnvError);
		expect((err as EnvError).issues.join(" ")).toContain(name);
		expect((err as EnvError).issues.join(" ")).not.toContain(value);
	});

	it("a misconfigured deployment answers 500 problem+json naming the variable, never its value", async () => {
		const res = await callWithEnv<Problem>({ CLERK_WEBHOOK_SECRET: "leaky-value" }, "GET", "/api/me");
		expect(res.status).toBe(500);
		expect(res.json).toMatchObject({ status: 500, code: "BAD_ENVIRONMENT" });
		expect(res.json.detail).toContain("CLERK_WEBHOOK_SECRET");
		expect(res.text).not.toContain("leaky-value");
	});

	it("secrets are used exactly as given; only an empty or whitespace-only value counts as unset", () => {
		const c = parseEnv({
			...base,
			RAZORPAY_KEY_SECRET: " rzp secret\n",
			RAZORPAY_WEBHOOK_SECRET: "\twebhook ",
			STRIPE_SECRET_KEY: "sk_test_x ",
			STRIPE_WEBHOOK_SECRET: " whsec_stripe",
			CLERK_SECRET_KEY: "sk_test_clerk ",
			CLERK_WEBHOOK_SECRET: "whsec_abc ",
		});
		expect(c).toMatchObject({
			RAZORPAY_KEY_SECRET: " rzp secret\n",
			RAZORPAY_WEBHOOK_SECRET: "\twebhook ",
			STRIPE_SECRET_KEY: "sk_test_x ",
			STRIPE_WEBHOOK_SECRET: " whsec_stripe",
			CLERK_SECRET_KEY: "sk_test_clerk ",
			CLERK_WEBHOOK_SECRET: "whsec_abc ",
		});
		const blank = parseEnv({ ...base, RAZORPAY_KEY_SECRET: "  ", STRIPE_WEBHOOK_SECRET: "\n", CLERK_SECRET_KEY: "" });
		expect(blank.RAZORPAY_KEY_SECRET).toBeUndefined();
		expect(blank.STRIPE_WEBHOOK_SECRET).toBeUndefined();
		expect(blank.CLERK_SECRET_KEY).toBeUndefined();
	});

	it("CLERK_WEBHOOK_SIGNING_SECRET (Clerk's current name) stands in for CLERK_WEBHOOK_SECRET; two different values are refused", () => {
		expect(parseEnv({ ...base, CLERK_WEBHOOK_SIGNING_SECRET: "whsec_new" }).CLERK_WEBHOOK_SECRET).toBe("whsec_new");
		expect(parseEnv({ ...base, CLERK_WEBHOOK_SECRET: "whsec_a", CLERK_WEBHOOK_SIGNING_SECRET: "whsec_a" }).CLERK_WEBHOOK_SECRET).toBe(
			"whsec_a",
		);
		expect(() => parseEnv({ ...base, CLERK_WEBHOOK_SECRET: "whsec_a", CLERK_WEBHOOK_SIGNING_SECRET: "whsec_b" })).toThrow(
			/CLERK_WEBHOOK_SECRET.*CLERK_WEBHOOK_SIGNING_SECRET/,
		);
	});

	it("provider base URLs default to the real hosts and may point elsewhere", () => {
		expect(parseEnv(base)).toMatchObject({ RAZORPAY_API_BASE: "https://api.razorpay.com", STRIPE_API_BASE: "https://api.stripe.com" });
		expect(parseEnv({ ...base, RAZORPAY_API_BASE: "http://localhost:9999/rzp/", STRIPE_API_BASE: "http://localhost:9998" })).toMatchObject({
			RAZORPAY_API_BASE: "http://localhost:9999/rzp",
			STRIPE_API_BASE: "http://localhost:9998",
		});
		expect(parseEnv({ ...base, STRIPE_API_BASE: "http://localhost:9998/stripe/" })).toMatchObject({ STRIPE_API_BASE: "http://localhost:9998/stripe" });
	});

	it("a Clerk publishable key supplies the JWKS URL and issuer that are not set", () => {
		const pk = `pk_test_${btoa("clerk.example.com$")}`;
		expect(parseEnv({ ...base, CLERK_PUBLISHABLE_KEY: pk })).toMatchObject({
			CLERK_JWKS_URL: "https://clerk.example.com/.well-known/jwks.json",
			CLERK_ISSUER: "https://clerk.example.com",
		});
		const explicit = parseEnv({ ...base, CLERK_PUBLISHABLE_KEY: pk, CLERK_ISSUER: "https://other.example", CLERK_JWKS_URL: "https://other.example/jwks" });
		expect(explicit).toMatchObject({ CLERK_ISSUER: "https://other.example", CLERK_JWKS_URL: "https://other.example/jwks" });
	});
});
