import { env } from "cloudflare:workers";
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
