import { env, exports } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { INVALID_DETAIL } from "../../src/middleware/auth";
import { envelope, svixHeaders, userData } from "../helpers/clerk";
import { uid } from "../helpers/factories";
import { call } from "../helpers/request";


const post = (body: string, headers: Record<string, string>) => call("POST", "/api/webhooks/clerk", { body, headers });

describe("POST /api/webhooks/clerk: signature checks", () => {
	const body = () => JSON.stringify(envelope("user.created", userData(uid("user"))));

	it("valid signature: 202 once the event is queued, with svix-id and the raw body", async () => {
		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send");
		const raw = body();
		const headers = svixHeaders(raw);
		const res = await post(raw, headers);
		expect(res.status, res.text).toBe(202);
		expect(res.json).toEqual({ status: "queued", svixId: headers["svix-id"] });
		expect(send).toHaveBeenCalledTimes(1);
		const [msg] = send.mock.calls[0] as [Record<string, unknown>];
		expect(msg).toMatchObject({ source: "clerk", svixId: headers["svix-id"], type: "user.created", body: raw });
	});

	it("accepts a multi-signature header when any one signature matches", async () => {
		const raw = body();
		const headers = svixHeaders(raw, { extraSignatures: ["v1,Zm9vYmFy", "v2,bm90LWEtc2ln"] });
		expect((await post(raw, headers)).status).toBe(202);
	});

	const rejected: [string, () => { raw: string; headers: Record<string, string> }, number][] = [
		[
			"tampered body",
			() => {
				const raw = body();
				return { raw: raw.replace("Grace", "Mallory"), headers: svixHeaders(raw) };
			},
			401,
		],
		[
			"wrong secret",
			() => {
				const raw = body();
				return { raw, headers: svixHeaders(raw, { secret: "whsec_dGhpcyBpcyBub3QgdGhlIHJpZ2h0IGtleQ==" }) };
			},
			401,
		],
		[
			"stale timestamp (301 s)",
			() => {
				const raw = body();
				return { raw, headers: svixHeaders(raw, { at: Math.floor(Date.now() / 1000) - 301 }) };
			},
			401,
		],
		[
			"future timestamp (301 s)",
			() => {
				const raw = body();
				return { raw, headers: svixHeaders(raw, { at: Math.floor(Date.now() / 1000) + 301 }) };
			},
			401,
		],
		[
			"signature of another message id",
			() => {
				const raw = body();
				return { raw, headers: { ...svixHeaders(raw), "svix-id": "msg_other" } };
			},
			401,
		],
		// An incomplete set is malformed (400); no signature at all is a missing credential (401).
		...(["svix-id", "svix-timestamp", "svix-signature"] as const).map(
			(h) =>
				[
					`missing ${h}`,
					() => {
						const raw = body();
						const headers: Record<string, string> = svixHeaders(raw);
						delete headers[h];
						return { raw, headers };
					},
					h === "svix-signature" ? 401 : 400,
				] as [string, () => { raw: string; headers: Record<string, string> }, number],
		),
		["signed non-JSON body", () => ({ raw: "not json", headers: svixHeaders("not json") }), 400],
		["signed JSON that is not an event envelope", () => ({ raw: '{"hello":1}', headers: svixHeaders('{"hello":1}') }), 400],
		[
			"body over the cap",
			() => {
				const raw = JSON.stringify(envelope("user.created", { ...userData(uid("user")), pad: "x".repeat(100 * 1024) }));
				return { raw, headers: svixHeaders(raw) };
			},
			413,
		],
	];

	it.each(rejected)("%s: problem+json, nothing queued", async (_name, make, status) => {
		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send");
		const { raw, headers } = make();
		const res = await post(raw, headers);
		expect(res.status, res.text).toBe(status);
		expect(res.headers.get("content-type")).toBe("application/problem+json");
		expect(res.json).toMatchObject({ status, requestId: expect.any(String) });
		// A signature presented but refused: the one detail of every refused credential (it does not say which check failed).
		if (status === 401 && headers["svix-signature"]) expect(res.json).toMatchObject({ detail: INVALID_DETAIL });
		expect(send).not.toHaveBeenCalled();
	});

	it("a signed body sent as another media type than JSON: 415, nothing queued; JSON with a charset or none at all is taken", async () => {
		const send = vi.spyOn(env.WEBHOOK_QUEUE, "send");
		for (const type of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/cloudevents+json"]) {
			const raw = body();
			const res = await post(raw, { ...svixHeaders(raw), "content-type": type });
			expect(res.status, `${type}: ${res.text}`).toBe(415);
			expect(res.json).toMatchObject({ status: 415, requestId: expect.any(String) });
		}
		expect(send).not.toHaveBeenCalled();
		for (const type of ["application/json; charset=utf-8", "Application/JSON"]) {
			const raw = body();
			expect((await post(raw, { ...svixHeaders(raw), "content-type": type })).status, type).toBe(202);
		}
		const raw = body();
		const bare = await exports.default.fetch(
			new Request("https://api.test/api/webhooks/clerk", { method: "POST", headers: svixHeaders(raw), body: new TextEncoder().encode(raw) }),
		);
		expect(bare.headers.get("content-type")).toBe("application/json");
		expect(bare.status, await bare.text()).toBe(202);
	});

	it.each([
		["/api/webhooks/clerk", () => svixHeaders("{}")],
		["/api/webhooks/stripe", () => ({ "stripe-signature": `t=${Math.floor(Date.now() / 1000)},v1=${"0".repeat(64)}` })],
		["/api/webhooks/razorpay", () => ({ "x-razorpay-signature": "0".repeat(64) })],
	])("%s: a chunked body (no Content-Length) is refused with 413 once past the cap, not read whole", async (path, headers) => {
		const CHUNK = 64 * 1024;
		let pulled = 0;
		const stream = new ReadableStream<Uint8Array>({
			pull(controller) {
				if (pulled >= 10 * 1024 * 1024) return controller.close();
				pulled += CHUNK;
				controller.enqueue(new Uint8Array(CHUNK).fill(0x61));
			},
		});
		const req = new Request(`https://api.test${path}`, {
			method: "POST",
			headers: { "content-type": "application/json", ...headers() },
			body: stream,
			// @ts-expect-error workerd's RequestInit takes duplex for a streamed body
			duplex: "half",
		});
		expect(req.headers.get("content-length")).toBeNull();
		const res = await exports.default.fetch(req);
		expect(res.status, await res.text()).toBe(413);
		// 96 KiB is the cap: the stream was cancelled a few chunks in, never read to its 10 MiB.
		expect(pulled).toBeLessThan(1024 * 1024);
	});

	it("a failed queue send answers 503 so Clerk retries", async () => {
		vi.spyOn(env.WEBHOOK_QUEUE, "send").mockRejectedValue(new Error("queue unavailable"));
		const raw = body();
		const res = await post(raw, svixHeaders(raw));
		expect(res.status, res.text).toBe(503);
		expect(res.json).toMatchObject({ status: 503 });
	});

	it("writes nothing to D1 on the ingest path", async () => {
		const raw = body();
		const headers = svixHeaders(raw);
		const prepare = vi.spyOn(env.DB, "prepare");
		expect((await post(raw, headers)).status).toBe(202);
		expect(prepare).not.toHaveBeenCalled();
	});
});
