/**
 * Svix / Standard Webhooks signatures, verified over the exact request bytes.
 *
 * Signed content: `${id}.${timestamp}.` followed by the raw body bytes; the signature is
 * base64(HMAC-SHA256(key, content)) where the key is the base64-decoded secret after `whsec_`.
 * The signature header holds one or more space-separated `v1,<base64>` entries (other versions are
 * skipped); any one match verifies. Timestamps (seconds) more than 5 minutes off are refused.
 * Comparison is SubtleCrypto's HMAC verify (constant time), never a string compare.
 */

const TOLERANCE_SECONDS = 5 * 60;
const PREFIX = "whsec_";

export interface SignatureHeaders {
	id: string;
	timestamp: string;
	signature: string;
}

/**
 * The signature headers of a request: svix-* when any of them is present, else the Standard
 * Webhooks names (webhook-*). `missing` lists the absent names of the set in use.
 */
export function signatureHeaders(
	header: (name: string) => string | undefined,
): { headers: SignatureHeaders; missing: [] } | { headers: null; missing: string[] } {
	const svix = ["svix-id", "svix-timestamp", "svix-signature"];
	const standard = ["webhook-id", "webhook-timestamp", "webhook-signature"];
	const names = svix.some((n) => header(n)) ? svix : standard.some((n) => header(n)) ? standard : svix;
	const [id, timestamp, signature] = names.map((n) => header(n) ?? "");
	const missing = names.filter((n) => !header(n));
	if (missing.length > 0 || !id || !timestamp || !signature) return { headers: null, missing };
	return { headers: { id, timestamp, signature }, missing: [] };
}

/** A timestamp header is a positive integer of seconds, nothing else (no sign, fraction or exponent). */
export const isTimestamp = (v: string): boolean => /^[1-9][0-9]{0,14}$/.test(v);

const keys = new Map<string, Promise<CryptoKey | null>>();

function importKey(secret: string): Promise<CryptoKey | null> {
	let key = keys.get(secret);
	if (!key) {
		key = (async () => {
			const b64 = secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret;
			const raw = decodeBase64(b64);
			if (!raw || raw.byteLength === 0) return null;
			return crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
		})().catch(() => null);
		keys.set(secret, key);
	}
	return key;
}

function decodeBase64(v: string): Uint8Array<ArrayBuffer> | null {
	try {
		const bin = atob(v);
		const out = new Uint8Array(bin.length);
		for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
		return out;
	} catch {
		return null;
	}
}

/**
 * True when one of the `v1` signatures matches the body bytes and the timestamp is within 5 minutes
 * of `nowSeconds`. The timestamp must already have passed isTimestamp.
 */
export async function verifySignature(
	secret: string,
	h: SignatureHeaders,
	body: Uint8Array,
	nowSeconds = Math.floor(Date.now() / 1000),
): Promise<boolean> {
	const ts = Number(h.timestamp);
	if (!Number.isSafeInteger(ts) || Math.abs(nowSeconds - ts) > TOLERANCE_SECONDS) return false;
	const key = await importKey(secret);
	if (!key) return false;
	const head = new TextEncoder().encode(`${h.id}.${h.timestamp}.`);
	const content = new Uint8Array(head.byteLength + body.byteLength);
	content.set(head, 0);
	content.set(body, head.byteLength);
	for (const entry of h.signature.split(" ")) {
		const comma = entry.indexOf(",");
		if (comma < 0 || entry.slice(0, comma) !== "v1") continue;
		const sig = decodeBase64(entry.slice(comma + 1));
		if (!sig || sig.byteLength !== 32) continue;
		if (await crypto.subtle.verify("HMAC", key, sig, content)) return true;
	}
	return false;
}
