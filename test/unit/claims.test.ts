import { describe, expect, it } from "vitest";
import { decodeV2Permissions, normalizeClaims, normalizeRoleKey } from "../../src/auth/claims";
import { decodeCursor, encodeCursor } from "../../src/lib/cursor";
import { ifMatchVersions } from "../../src/lib/etag";
import { encodeV2Permissions } from "../helpers/jwt";

describe("Clerk v2 permission decoding", () => {
	it("masks past 32 and 53 bits (Clerk's own vector: 54 names, 2^53 + 1 grants the first and the last); a mask that is not digits grants nothing", () => {
		const names = Array.from({ length: 54 }, (_, i) => `permission_${i}`).join(",");
		expect(decodeV2Permissions("o:f", names, "9007199254740993")).toEqual(["org:f:permission_0", "org:f:permission_53"]);
		expect(decodeV2Permissions("o:f", names, "1")).toEqual(["org:f:permission_0"]);
		expect(decodeV2Permissions("o:f", names, String(2 ** 33))).toEqual(["org:f:permission_33"]);
		for (const bad of ["-1", "1invalid", "0x3", "1e3", ""]) expect(decodeV2Permissions("o:f", "read,manage", bad), bad).toEqual([]);
		// Bits past the names grant nothing.
		expect(decodeV2Permissions("o:f", "read", "6")).toEqual([]);
	});

	it("matches Clerk's own example: bit i (least significant first) grants per[i]", () => {
		const perms = decodeV2Permissions("o:billing,o:email,o:fraud,o:instance,o:staging_plans", "manage,read", "3,3,3,3,1");
		expect(perms.sort()).toEqual(
			[
				"org:billing:manage",
				"org:billing:read",
				"org:email:manage",
				"org:email:read",
				"org:fraud:manage",
				"org:fraud:read",
				"org:instance:manage",
				"org:instance:read",
				"org:staging_plans:manage",
			].sort(),
		);
	});

	it("ignores user-scoped features and tolerates missing parts", () => {
		expect(decodeV2Permissions("u:profile,o:reports", "read", "1,1")).toEqual(["org:reports:read"]);
		expect(decodeV2Permissions(undefined, "read", "1")).toEqual([]);
		expect(decodeV2Permissions("o:reports", "read", undefined)).toEqual([]);
		expect(decodeV2Permissions("uo:billing", "read,manage", "2")).toEqual(["org:billing:manage"]);
	});

	it("round-trips with the test encoder", () => {
		const perms = ["org:a:read", "org:a:write", "org:b:write", "org:c:read"];
		const { fea, per, fpm } = encodeV2Permissions(perms);
		expect(decodeV2Permissions(fea, per, fpm).sort()).toEqual(perms.sort());
	});
});

describe("claim normalisation", () => {
	it("v1 and v2 tokens describe the same session the same way", () => {
		const v1 = normalizeClaims({
			sub: "user_1",
			exp: 10,
			sid: "s",
			org_id: "org_1",
			org_slug: "acme",
			org_role: "admin",
			org_permissions: ["org:x:read"],
		});
		const v2 = normalizeClaims({
			sub: "user_1",
			exp: 10,
			sid: "s",
			v: 2,
			fea: "o:x",
			o: { id: "org_1", slg: "acme", rol: "admin", per: "read", fpm: "1" },
		});
		const { tokenVersion: _a, ...a } = v1;
		const { tokenVersion: _b, ...b } = v2;
		expect(a).toEqual(b);
		expect(a).toMatchObject({ orgId: "org_1", orgRole: "org:admin", orgPermissions: ["org:x:read"] });
	});

	it("keeps iat (for user-level revocation) and the sid", () => {
		expect(normalizeClaims({ sub: "u", exp: 100, iat: 40, sid: "sess_1" })).toMatchObject({ issuedAt: 40, sessionId: "sess_1" });
		expect(normalizeClaims({ sub: "u", exp: 100 })).not.toHaveProperty("issuedAt");
	});

	it("a pending session has no active organization", () => {
		const c = normalizeClaims({ sub: "u", exp: 1, v: 2, sts: "pending", o: { id: "org_1", rol: "admin" } });
		expect(c).toMatchObject({ orgId: null, orgRole: null, orgPermissions: [] });
	});

	it.each([
		["admin", "org:admin"],
		["basic_member", "org:member"],
		["org:admin", "org:admin"],
		["editor", "org:editor"],
		["org:editor", "org:editor"],
	])("role %s → %s", (input, expected) => expect(normalizeRoleKey(input)).toBe(expected));
});

describe("small parsers", () => {
	it.each<[string | undefined, number[] | undefined]>([
		[undefined, undefined],
		["*", undefined],
		[" * ", undefined],
		['"3"', [3]],
		['W/"3"', [3]],
		['"3", "4"', [3, 4]],
		['"3",W/"4" ,  "5"', [3, 4, 5]],
		['"abc", "4"', [4]],
		['"a,b", "4"', [4]],
		["3", []],
		['"abc"', []],
		["", []],
		['"3" "4"', []],
		['"3",', []],
		['"3", *', []],
		['"3', []],
		['"3", "3", W/"3"', [3]],
		[Array.from({ length: 20 }, (_, i) => `"${i}"`).join(", "), Array.from({ length: 20 }, (_, i) => i)],
		[Array.from({ length: 21 }, (_, i) => `"${i}"`).join(", "), []],
	])("If-Match %s → %s", (header, versions) => expect(ifMatchVersions(header)).toEqual(versions));

	it("cursors round-trip and garbage is a 400", () => {
		expect(decodeCursor(encodeCursor({ k: 1_700_000_000_000, id: "x_1" }))).toEqual({ k: 1_700_000_000_000, id: "x_1" });
		expect(decodeCursor(undefined)).toBeNull();
		expect(() => decodeCursor("%%%")).toThrow();
		expect(() => decodeCursor(btoa(JSON.stringify(["a", 1])))).toThrow();
	});
});
