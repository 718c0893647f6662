import { exportSPKI, importJWK, type JWK, SignJWT } from "jose";
import keys from "../fixtures/test-keys.json";
import { TEST_AZP, TEST_ISSUER } from "./vars";

export type KeyName = keyof typeof keys;
export { keys };

const privateKeys = new Map<string, CryptoKey>();
async function privateKey(name: KeyName): Promise<CryptoKey> {
	let k = privateKeys.get(name);
	if (!k) {
		k = (await importJWK(keys[name].privateJwk as JWK, keys[name].alg)) as CryptoKey;
		privateKeys.set(name, k);
	}
	return k;
}

export async function publicPem(name: KeyName): Promise<string> {
	const k = (await importJWK(keys[name].publicJwk as JWK, keys[name].alg, { extractable: true })) as CryptoKey;
	return exportSPKI(k);
}

export interface TokenOptions {
	userId?: string;
	orgId?: string | null;
	orgSlug?: string;
	role?: string;
	permissions?: string[];
	format?: "v1" | "v2";
	key?: KeyName;
	kid?: string | null;
	alg?: string;
	issuer?: string;
	azp?: string | null;
	/** seconds relative to now */
	expiresIn?: number | null;
	issuedAt?: number;
	notBefore?: number;
	sts?: string;
	extra?: Record<string, unknown>;
}

/** Encodes permissions the way Clerk's v2 tokens do: features in `fea`, names in `o.per`, bitmasks in `o.fpm`. */
export function encodeV2Permissions(permissions: string[]) {
	const features: string[] = [];
	const names: string[] = [];
	for (const p of permissions) {
		const [, feature, name] = p.split(":");
		if (!feature || !name) continue;
		if (!features.includes(feature)) features.push(feature);
		if (!names.includes(name)) names.push(name);
	}
	const fpm = features.map((f) =>
		names.reduce((mask, n, bit) => (permissions.includes(`org:${f}:${n}`) ? mask | (1n << BigInt(bit)) : mask), 0n),
	);
	return { fea: features.map((f) => `o:${f}`).join(","), per: names.join(","), fpm: fpm.join(",") };
}

export async function signToken(o: TokenOptions = {}): Promise<string> {
	const now = Math.floor(Date.now() / 1000);
	const keyName = o.key ?? "primary";
	const userId = o.userId ?? "user_test";
	const claims: Record<string, unknown> = { sid: "sess_test", ...o.extra };
	if (o.azp !== null) claims.azp = o.azp ?? TEST_AZP;
	if (o.sts) claims.sts = o.sts;
	const orgId = o.orgId === undefined ? null : o.orgId;
	const role = o.role ?? "org:member";
	const perms = o.permissions ?? [];
	if (o.format === "v1") {
		if (orgId) {
			claims.org_id = orgId;
			claims.org_slug = o.orgSlug ?? orgId;
			claims.org_role = role;
			claims.org_permissions = perms;
		}
	} else {
		claims.v = 2;
		if (orgId) {
			const enc = encodeV2Permissions(perms);
			claims.fea = enc.fea;
			claims.o = { id: orgId, slg: o.orgSlug ?? orgId, rol: role.replace(/^org:/, ""), per: enc.per, fpm: enc.fpm };
		}
	}
	const header: Record<string, unknown> = { alg: o.alg ?? keys[keyName].alg, typ: "JWT" };
	if (o.kid !== null) header.kid = o.kid ?? keys[keyName].kid;
	let jwt = new SignJWT(claims)
		.setProtectedHeader(header as { alg: string })
		.setIssuer(o.issuer ?? TEST_ISSUER)
		.setSubject(userId)
		.setIssuedAt(o.issuedAt ?? now);
	if (o.expiresIn !== null) jwt = jwt.setExpirationTime((o.issuedAt ?? now) + (o.expiresIn ?? 60));
	if (o.notBefore !== undefined) jwt = jwt.setNotBefore(o.notBefore);
	return jwt.sign(await privateKey(keyName));
}

export function jwks(...names: KeyName[]) {
	return { keys: names.map((n) => keys[n].publicJwk) };
}

