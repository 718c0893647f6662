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
		const res = await callWithEnv<Problem>({ CLERK_WEBHOOK_SECRET: "leaky-value" }, "GET", "/api/health");
		expect(res.status).toBe(500);
		expect(res.json).toMatchObject({ status: 500, code: "BAD_ENVIRONMENT" });
		expect(res.json.detail).toContain("CLERK_WEBHOOK_SECRET");
		expect(res.text).not.toContain("leaky-value");
	});
});
