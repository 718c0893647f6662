/** The configuration the test Worker runs with (a fake Clerk instance served by the fetch stub). */
export const TEST_ISSUER = "https://clerk.test.example";
export const TEST_JWKS_URL = `${TEST_ISSUER}/.well-known/jwks.json`;
export const TEST_WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
export const TEST_AZP = "https://app.test.example";
export const TEST_OPERATOR = "user_operator";

export const TEST_VARS = {
	CLERK_ISSUER: TEST_ISSUER,
	CLERK_JWKS_URL: TEST_JWKS_URL,
	CLERK_AUTHORIZED_PARTIES: `${TEST_AZP},https://admin.test.example`,
	CLERK_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
	OPERATOR_USER_IDS: TEST_OPERATOR,
	LOG_LEVEL: "error",
	RATE_LIMIT_MODE: "off",
};
