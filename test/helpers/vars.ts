/** The configuration the test Worker runs with (a fake Clerk instance served by the fetch stub). */
export const TEST_ISSUER = "https://clerk.test.example";
export const TEST_JWKS_URL = `${TEST_ISSUER}/.well-known/jwks.json`;
export const TEST_WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
export const TEST_AZP = "https://app.test.example";
export const TEST_OPERATOR = "user_operator";

export const TEST_RAZORPAY = { keyId: "rzp_test_key", keySecret: "rzp_test_secret", webhookSecret: "rzp_webhook_secret" };
export const TEST_STRIPE = { secretKey: "sk_test_123", webhookSecret: "whsec_stripe_test_secret", meterEventName: "api_calls" };
/** Clerk Backend API key; tests stub https://api.clerk.com/ (test/helpers/clerk-api.ts). */
export const TEST_CLERK_SECRET_KEY = "sk_test_clerk_backend";

export const TEST_VARS = {
	RAZORPAY_KEY_ID: TEST_RAZORPAY.keyId,
	RAZORPAY_KEY_SECRET: TEST_RAZORPAY.keySecret,
	RAZORPAY_WEBHOOK_SECRET: TEST_RAZORPAY.webhookSecret,
	STRIPE_SECRET_KEY: TEST_STRIPE.secretKey,
	STRIPE_WEBHOOK_SECRET: TEST_STRIPE.webhookSecret,
	STRIPE_METER_EVENT_NAME: TEST_STRIPE.meterEventName,
	CLERK_ISSUER: TEST_ISSUER,
	CLERK_JWKS_URL: TEST_JWKS_URL,
	CLERK_AUTHORIZED_PARTIES: `${TEST_AZP},https://admin.test.example`,
	CLERK_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
	CLERK_SECRET_KEY: TEST_CLERK_SECRET_KEY,
	OPERATOR_USER_IDS: TEST_OPERATOR,
	// Tests that inject failures would print expected errors; a failing test can flip this to "debug".
	LOG_LEVEL: "silent",
	RATE_LIMIT_MODE: "off",
};
