const encoder = new TextEncoder();
const keyCache = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
	// Imported HMAC keys per secret: secrets are fixed for the isolate's lifetime.
	let key = keyCache.get(secret);
	if (!key) {
		key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
		keyCache.set(secret, key);
	}
	return key;
}

export const toHex = (buf: ArrayBuffer) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");

export async function hmacSha256Hex(secret: string, data: string): Promise<string> {
	return toHex(await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(data)));
}

export async function sha256Hex(data: string): Promise<string> {
	return toHex(await crypto.subtle.digest("SHA-256", encoder.encode(data)));
}

/** Compares two strings in time that depends only on their lengths. */
export function timingSafeEqual(a: string, b: string): boolean {
	const x = encoder.encode(a);
	const y = encoder.encode(b);
	let diff = x.length ^ y.length;
	for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
	return diff === 0;
}

const WEBHOOK_SECRET_PREFIX = "whsec_";

/**
 * A Standard Webhooks (Svix) signature header value: `v1,` + base64(HMAC-SHA256(key, "<id>.<timestamp>.<payload>")),
 * the key being the base64-decoded secret after `whsec_`; what svix's Webhook#sign computes.
 */
export async function standardWebhookSignature(secret: string, id: string, timestampSeconds: number, payload: string): Promise<string> {
	const b64 = secret.startsWith(WEBHOOK_SECRET_PREFIX) ? secret.slice(WEBHOOK_SECRET_PREFIX.length) : secret;
	const raw = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
	if (raw.length === 0) throw new Error("empty webhook secret");
	const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
	const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(`${id}.${timestampSeconds}.${payload}`)));
	return `v1,${btoa(String.fromCharCode(...mac))}`;
}
