/**
 * Which network addresses an outgoing request (a tenant's webhook endpoint) may reach: only globally
 * routable unicast. Every block of IANA's IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890
 * and its updates) is refused, and so is any IPv6 form that carries an IPv4 address (IPv4-mapped,
 * IPv4-compatible, NAT64, 6to4, Teredo), since the embedded address decides where it ends up.
 */

type Block = readonly [network: bigint, prefix: number];

const v4 = (a: number, b: number, c: number, d: number) => BigInt(((a << 24) | (b << 16) | (c << 8) | d) >>> 0);

// IANA IPv4 Special-Purpose Address Registry, plus multicast and the reserved class E block.
const V4_SPECIAL: Block[] = [
	[v4(0, 0, 0, 0), 8], // "this network"
	[v4(10, 0, 0, 0), 8], // private
	[v4(100, 64, 0, 0), 10], // shared address space (CGNAT)
	[v4(127, 0, 0, 0), 8], // loopback
	[v4(169, 254, 0, 0), 16], // link-local (cloud metadata lives here)
	[v4(172, 16, 0, 0), 12], // private
	[v4(192, 0, 0, 0), 24], // IETF protocol assignments
	[v4(192, 0, 2, 0), 24], // TEST-NET-1
	[v4(192, 31, 196, 0), 24], // AS112-v4
	[v4(192, 52, 193, 0), 24], // AMT
	[v4(192, 88, 99, 0), 24], // deprecated 6to4 relay anycast
	[v4(192, 168, 0, 0), 16], // private
	[v4(192, 175, 48, 0), 24], // direct delegation AS112
	[v4(198, 18, 0, 0), 15], // benchmarking
	[v4(198, 51, 100, 0), 24], // TEST-NET-2
	[v4(203, 0, 113, 0), 24], // TEST-NET-3
	[v4(224, 0, 0, 0), 4], // multicast
	[v4(240, 0, 0, 0), 4], // reserved, and 255.255.255.255 broadcast
];

const v6 = (text: string) => parseIPv6(text) as bigint;

// IANA IPv6 Special-Purpose Address Registry, plus link/site-local and multicast.
const V6_SPECIAL: Block[] = [
	[0n, 96], // ::/128 unspecified, ::1 loopback, ::/96 IPv4-compatible (deprecated)
	[v6("::ffff:0:0"), 96], // IPv4-mapped
	[v6("::ffff:0:0:0"), 96], // IPv4-translated (RFC 2765)
	[v6("64:ff9b::"), 96], // NAT64 well-known prefix
	[v6("64:ff9b:1::"), 48], // NAT64 local use
	[v6("100::"), 64], // discard-only
	[v6("2001::"), 23], // IETF protocol assignments (Teredo, benchmarking, ORCHID, …)
	[v6("2001:db8::"), 32], // documentation
	[v6("2002::"), 16], // 6to4
	[v6("3fff::"), 20], // documentation (RFC 9637)
	[v6("5f00::"), 16], // SRv6 SIDs
	[v6("fc00::"), 7], // unique local
	[v6("fe80::"), 10], // link-local
	[v6("fec0::"), 10], // site-local (deprecated)
	[v6("ff00::"), 8], // multicast
];

const inBlock = (addr: bigint, bits: number, [network, prefix]: Block) =>
	addr >> BigInt(bits - prefix) === network >> BigInt(bits - prefix);

/** A dotted-quad IPv4 address as a number, or null. */
export function parseIPv4(text: string): bigint | null {
	const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
	if (!m) return null;
	const parts = m.slice(1).map(Number);
	if (parts.some((p) => p > 255)) return null;
	return v4(parts[0] as number, parts[1] as number, parts[2] as number, parts[3] as number);
}

/** An IPv6 address (with optional embedded dotted quad, without brackets or zone) as a number, or null. */
export function parseIPv6(text: string): bigint | null {
	let s = text.toLowerCase();
	if (s.includes("%")) return null;
	const dotted = /(\d{1,3}(?:\.\d{1,3}){3})$/.exec(s);
	if (dotted) {
		const n = parseIPv4(dotted[1] as string);
		if (n === null) return null;
		s = `${s.slice(0, -(dotted[1] as string).length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
	}
	const halves = s.split("::");
	if (halves.length > 2) return null;
	const parse = (h: string) => (h === "" ? [] : h.split(":"));
	const head = parse(halves[0] as string);
	const tail = halves.length === 2 ? parse(halves[1] as string) : [];
	const groups = halves.length === 2 ? [...head, ...Array(8 - head.length - tail.length).fill("0"), ...tail] : head;
	if (groups.length !== 8 || (halves.length === 2 && head.length + tail.length > 7)) return null;
	let n = 0n;
	for (const g of groups) {
		if (!/^[0-9a-f]{1,4}$/.test(g)) return null;
		n = (n << 16n) | BigInt(Number.parseInt(g, 16));
	}
	return n;
}

/**
 * Why an IP literal (IPv4 dotted quad, or IPv6 with or without brackets) may not be reached, or null
 * when it is globally routable unicast. Text that is not an IP literal also answers null.
 */
export function refuseAddress(ip: string): string | null {
	const bare = ip.startsWith("[") && ip.endsWith("]") ? ip.slice(1, -1) : ip;
	const a4 = parseIPv4(bare);
	if (a4 !== null) return V4_SPECIAL.some((b) => inBlock(a4, 32, b)) ? "private or reserved IP addresses are not allowed" : null;
	const a6 = bare.includes(":") ? parseIPv6(bare) : null;
	if (a6 === null) return bare.includes(":") ? "not a valid IP address" : null;
	return V6_SPECIAL.some((b) => inBlock(a6, 128, b)) ? "private or reserved IP addresses are not allowed" : null;
}

/** Looks up a name's A and AAAA records; returns the addresses (empty when the name does not exist). */
export type Resolver = (host: string) => Promise<string[]>;

/** 1.1.1.1's DNS-over-HTTPS JSON API (Workers cannot resolve names themselves). */
export const DOH_URL = "https://cloudflare-dns.com/dns-query";

interface DohAnswer {
	Status?: number;
	Answer?: { type?: number; data?: string }[];
}

/**
 * Resolves through DNS-over-HTTPS (JSON API: `?name=…&type=A|AAAA`, `accept: application/dns-json`).
 * Throws when the resolver itself fails, so a caller can refuse rather than guess.
 */
export const dohResolver =
	(fetcher: typeof fetch = fetch, url = DOH_URL): Resolver =>
	async (host) => {
		const lookups = [
			["A", 1],
			["AAAA", 28],
		] as const;
		const answers = await Promise.all(
			lookups.map(async ([type, code]) => {
				const res = await fetcher(`${url}?name=${encodeURIComponent(host)}&type=${type}`, {
					headers: { accept: "application/dns-json" },
					signal: AbortSignal.timeout(5_000),
				});
				if (!res.ok) throw new Error(`DNS-over-HTTPS answered HTTP ${res.status}`);
				const body = (await res.json()) as DohAnswer;
				// 0 NOERROR, 3 NXDOMAIN (no records); anything else is a resolver failure.
				if (body.Status !== 0 && body.Status !== 3) throw new Error(`DNS-over-HTTPS status ${body.Status}`);
				return (body.Answer ?? []).filter((r) => r.type === code && typeof r.data === "string").map((r) => r.data as string);
			}),
		);
		return answers.flat();
	};

/**
 * Why a URL's host may not be reached right now, or null: an IP literal is checked as it is; a name is
 * resolved and refused if it does not resolve or if any of its addresses is special-purpose (a name such
 * as 127.0.0.1.nip.io or localtest.me points at loopback).
 */
export async function refuseResolvedHost(host: string, resolve: Resolver): Promise<string | null> {
	const bare = host.replace(/\.+$/, "");
	if (parseIPv4(bare) !== null || bare.startsWith("[")) return refuseAddress(bare);
	let addresses: string[];
	try {
		addresses = await resolve(bare);
	} catch (err) {
		return `could not resolve ${bare}: ${err instanceof Error ? err.message : String(err)}`.slice(0, 200);
	}
	if (addresses.length === 0) return `${bare} does not resolve to an address`;
	const bad = addresses.find((a) => refuseAddress(a) !== null);
	return bad ? `${bare} resolves to ${bad}, a private or reserved address` : null;
}
