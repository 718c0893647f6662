import { describe, expect, it } from "vitest";
import { parseIPv6, refuseAddress, refuseResolvedHost } from "../../src/lib/net-policy";

const hostOf = (url: string) => new URL(url).hostname;

describe("refuseAddress: IANA special-purpose blocks", () => {
	it.each([
		"0.0.0.0",
		"10.1.2.3",
		"100.64.0.1",
		"127.0.0.1",
		"169.254.169.254",
		"172.16.0.1",
		"172.31.255.255",
		"192.0.0.8",
		"192.0.2.10",
		"192.88.99.1",
		"192.168.1.1",
		"198.18.0.1",
		"198.19.255.254",
		"198.51.100.7",
		"203.0.113.99",
		"224.0.0.1",
		"240.0.0.1",
		"255.255.255.255",
	])("refuses IPv4 %s", (ip) => {
		expect(refuseAddress(ip)).toMatch(/private or reserved/);
	});

	it.each(["1.1.1.1", "8.8.8.8", "172.32.0.1", "198.20.0.1", "203.0.114.1", "100.128.0.1"])("allows IPv4 %s", (ip) => {
		expect(refuseAddress(ip)).toBeNull();
	});

	it.each([
		"http://[::]/",
		"http://[::1]/",
		"http://[::127.0.0.1]/",
		"http://[::ffff:169.254.169.254]/",
		"http://[::ffff:8.8.8.8]/",
		"http://[::ffff:0:7f00:1]/",
		"http://[::ffff:0:a9fe:a9fe]/",
		"http://[64:ff9b::a9fe:a9fe]/",
		"http://[2001:db8::1]/",
		"http://[2001::1]/",
		"http://[2002:7f00:1::]/",
		"http://[fc00::1]/",
		"http://[fd12:3456::1]/",
		"http://[fe80::1]/",
		"http://[fec0::1]/",
		"http://[ff02::1]/",
		"http://[100::1]/",
		"http://[3fff::1]/",
	])("refuses the IPv6 literal in %s (as the URL parser normalises it)", (url) => {
		expect(refuseAddress(hostOf(url))).toMatch(/private or reserved/);
	});

	it.each(["http://[2606:4700:4700::1111]/", "http://[2a00:1450:4001:80b::200e]/"])("allows %s", (url) => {
		expect(refuseAddress(hostOf(url))).toBeNull();
	});

	it("decimal, octal and hex IPv4 forms are normalised by the URL parser and refused", () => {
		for (const url of ["http://2130706433/", "http://0x7f.1/", "http://0177.0.0.1/"]) {
			expect(refuseAddress(hostOf(url)), url).toMatch(/private or reserved/);
		}
	});

	it("parses IPv6 with an embedded dotted quad and rejects malformed text", () => {
		expect(parseIPv6("::ffff:1.2.3.4")).toBe(parseIPv6("::ffff:102:304"));
		expect(parseIPv6("1::2::3")).toBeNull();
		expect(parseIPv6("12345::")).toBeNull();
	});
});

describe("refuseResolvedHost", () => {
	const table: Record<string, string[]> = {
		"localtest.me": ["127.0.0.1"],
		"127.0.0.1.nip.io": ["127.0.0.1"],
		"metadata.example.net": ["93.184.216.34", "169.254.169.254"],
		"hooks.example.net": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
		"gone.example.net": [],
	};
	const resolve = async (h: string) => {
		const hit = table[h];
		if (!hit) throw new Error("SERVFAIL");
		return hit;
	};

	it("refuses names that resolve to loopback, private or metadata addresses", async () => {
		expect(await refuseResolvedHost("localtest.me", resolve)).toMatch(/resolves to 127\.0\.0\.1/);
		expect(await refuseResolvedHost("127.0.0.1.nip.io", resolve)).toMatch(/resolves to 127\.0\.0\.1/);
		expect(await refuseResolvedHost("metadata.example.net", resolve)).toMatch(/169\.254\.169\.254/);
	});

	it("allows a name whose every address is public; refuses one that does not resolve or whose lookup fails", async () => {
		expect(await refuseResolvedHost("hooks.example.net", resolve)).toBeNull();
		expect(await refuseResolvedHost("gone.example.net", resolve)).toMatch(/does not resolve/);
		expect(await refuseResolvedHost("broken.example.net", resolve)).toMatch(/could not resolve/);
	});

	it("checks IP literals without a lookup", async () => {
		const never = async () => {
			throw new Error("no lookup expected");
		};
		expect(await refuseResolvedHost("[::ffff:a9fe:a9fe]", never)).toMatch(/private or reserved/);
		expect(await refuseResolvedHost("8.8.8.8", never)).toBeNull();
	});
});
