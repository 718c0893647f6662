import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { resetApiKeyState } from "../../src/services/api-keys";
import { MAX_ENDPOINTS } from "../../src/services/endpoints";
import { fakeClerkApi } from "../helpers/clerk-api";
import { uid } from "../helpers/factories";
import { type Handler, stubNetwork } from "../helpers/network";
import { envelope, membershipData } from "../helpers/clerk";
import { deliver, messageFor, stripeMessage } from "../helpers/queue";
import { call } from "../helpers/request";
import { captureTenantEvents } from "../helpers/tenant-queue";
import { seedTenant, systemRolePermissions } from "../helpers/tenant";

const DAY = 86_400_000;
/** What an API key may do, as GET /api/me reports it (undefined once its organization is gone). */
const keyPermissions = async (secret: string) =>
	(await call<{ organization: { permissions: string[] } | null }>("GET", "/api/me", { token: secret })).json.organization?.permissions;
const sec = (ms: number) => Math.floor(ms / 1000);


const planOf = async (orgId: string) =>
	(await env.DB.prepare("SELECT plan FROM organizations WHERE id = ?").bind(orgId).first<{ plan: string }>())!.plan;

beforeEach(() => resetApiKeyState());
afterEach(() => resetApiKeyState());

// Found by a security review on 7 Dec 2026 (OWASP API Security Top 10): each test failed before its fix.

describe("OWASP API5: function-level authorization in member management", () => {
	it("a custom role holding only org:members:manage cannot make itself (or an invitee) org:admin", async () => {
		const t = await seedTenant({ plan: "pro", members: { admin: "org:admin", manager: { permissions: ["org:members:manage"] } } });
		const clerk = fakeClerkApi();
		stubNetwork(vi, { routes: clerk.routes });
		captureTenantEvents(vi);
		const self = await call("PATCH", `${t.base}/members/${t.manager.id}`, { token: t.manager.token, body: { role: "org:admin" } });
		const invite = await call("POST", `${t.base}/invitations`, {
			token: t.manager.token,
			body: { emailAddress: "sock-puppet@example.com", role: "org:admin" },
		});
		expect({ self: self.status, invite: invite.status }).toEqual({ self: 403, invite: 403 });
		// Refused before Clerk is asked.
		expect(clerk.state.calls).toHaveLength(0);
	});

	it("such a role grants, changes and removes only roles within its own permissions; never an admin", async () => {
		const memberPerms = await systemRolePermissions("org:member");
		expect(memberPerms.length).toBeGreaterThan(0);
		const t = await seedTenant({
			plan: "pro",
			members: { admin: "org:admin", manager: { permissions: ["org:members:manage", ...memberPerms] }, member: "org:member", other: "org:admin" },
		});
		const clerk = fakeClerkApi();
		stubNetwork(vi, { routes: clerk.routes });
		captureTenantEvents(vi);
		const as = (method: string, path: string, body?: unknown) => call(method, `${t.base}${path}`, { token: t.manager.token, body });
		expect((await as("POST", "/invitations", { emailAddress: "new@example.com", role: "org:member" })).status).toBe(201);
		expect((await as("PATCH", `/members/${t.member.id}`, { role: "org:member" })).status).toBe(200);
		const demote = await as("PATCH", `/members/${t.other.id}`, { role: "org:member" });
		expect(demote.status, demote.text).toBe(403);
		expect((await as("DELETE", `/members/${t.other.id}`)).status).toBe(403);
		expect((await as("PATCH", `/members/${t.member.id}`, { role: "org:admin" })).status).toBe(403);
		// An admin does all of it.
		expect((await call("PATCH", `${t.base}/members/${t.other.id}`, { token: t.admin.token, body: { role: "org:member" } })).status).toBe(200);
		expect((await call("DELETE", `${t.base}/members/${t.other.id}`, { token: t.admin.token })).status).toBe(204);
	});
});

describe("OWASP API6: billing flows", () => {
	it("a first invoice that failed (subscription incomplete) grants no paid plan", async () => {
		const t = await seedTenant();
		const sub = `sub_${uid("x").slice(-12)}`;
		const customer = `cus_${uid("x").slice(-12)}`;
		captureTenantEvents(vi);
		await deliver([
			stripeMessage("checkout.session.completed", Date.now(), {
				id: `cs_${uid("x")}`,
				object: "checkout.session",
				client_reference_id: t.orgId,
				customer,
				subscription: sub,
				payment_status: "unpaid",
				metadata: { organizationId: t.orgId, plan: "enterprise" },
			}),
		]);
		await deliver([
			stripeMessage("invoice.payment_failed", Date.now(), { id: "in_first", object: "invoice", customer, subscription: sub, billing_reason: "subscription_create" }),
		]);
		const row = await env.DB.prepare("SELECT status FROM subscriptions WHERE subscription_id = ?").bind(sub).first<{ status: string }>();
		expect({ plan: await planOf(t.orgId), status: row?.status }).toEqual({ plan: "free", status: "incomplete" });
	});

	it("a plan change made in the billing portal (new price) changes the plan", async () => {
		const t = await seedTenant();
		const sub = `sub_${uid("x").slice(-12)}`;
		const object = (price: { lookup_key: string; metadata: Record<string, string> }) => ({
			id: sub,
			object: "subscription",
			customer: "cus_portal",
			status: "active",
			// Set once by Checkout (subscription_data.metadata); the portal does not touch it.
			metadata: { organizationId: t.orgId, plan: "enterprise" },
			items: { object: "list", data: [{ id: "si_1", current_period_end: sec(Date.now() + 20 * DAY), price: { id: `price_${price.lookup_key}`, ...price } }] },
		});
		captureTenantEvents(vi);
		await deliver([stripeMessage("customer.subscription.created", Date.now() - 60_000, object({ lookup_key: "enterprise", metadata: { plan: "enterprise" } }))]);
		expect(await planOf(t.orgId)).toBe("enterprise");
		// Downgraded to the Pro price in the portal: Stripe now bills $49.
		await deliver([stripeMessage("customer.subscription.updated", Date.now(), object({ lookup_key: "pro", metadata: { plan: "pro" } }))]);
		expect(await planOf(t.orgId)).toBe("pro");
	});

	it("cancelling now invoices the metered usage already reported (invoice_now, as the offboarding cron does)", async () => {
		const t = await seedTenant({ plan: "enterprise" });
		const sub = `sub_${uid("x").slice(-12)}`;
		await env.DB.prepare(
			`INSERT INTO subscriptions (organization_id, provider, customer_id, subscription_id, plan, status, current_period_end, source_updated_at, updated_at)
			VALUES (?, 'stripe', 'cus_meter', ?, 'enterprise', 'active', ?, 1, 1)`,
		)
			.bind(t.orgId, sub, Date.now() + 20 * DAY)
			.run();
		const sent: URL[] = [];
		const routes: Record<string, Handler> = {
			"https://api.stripe.com/v1/subscriptions/": (req) => {
				sent.push(new URL(req.url));
				return Response.json({ id: sub, object: "subscription", status: "canceled", canceled_at: sec(Date.now()), cancel_at_period_end: false });
			},
		};
		stubNetwork(vi, { routes });
		captureTenantEvents(vi);
		const res = await call("POST", `${t.base}/billing/cancel`, { token: t.admin.token, body: { atPeriodEnd: false } });
		expect(res.status, res.text).toBe(200);
		expect(sent[0]?.searchParams.get("invoice_now")).toBe("true");
	});
});

describe("OWASP API1/API5: API keys stay within their creator", () => {
	it("a key minted by an expiring key does not outlive it", async () => {
		const t = await seedTenant({ plan: "pro" });
		captureTenantEvents(vi);
		const parent = await call<{ key: string; expiresAt: number }>("POST", `${t.base}/api-keys`, {
			token: t.admin.token,
			body: { name: "ci-1day", permissions: ["org:api_keys:manage", "org:members:read"], expiresAt: Date.now() + DAY },
		});
		expect(parent.status, parent.text).toBe(201);
		const child = await call<{ expiresAt: number | null }>("POST", `${t.base}/api-keys`, {
			token: parent.json.key,
			body: { name: "forever", permissions: ["org:members:read"] },
		});
		// Capped at the parent's expiry: none given, or a later one.
		expect(child.status, JSON.stringify(child.json)).toBe(201);
		expect(child.json.expiresAt).toBe(parent.json.expiresAt);
		const later = await call<{ expiresAt: number | null }>("POST", `${t.base}/api-keys`, {
			token: parent.json.key,
			body: { name: "later", permissions: ["org:members:read"], expiresAt: parent.json.expiresAt + DAY },
		});
		expect(later.status, later.text).toBe(201);
		expect(later.json.expiresAt).toBe(parent.json.expiresAt);
		const sooner = await call<{ expiresAt: number | null }>("POST", `${t.base}/api-keys`, {
			token: parent.json.key,
			body: { name: "sooner", permissions: ["org:members:read"], expiresAt: parent.json.expiresAt - 1000 },
		});
		expect(sooner.status, sooner.text).toBe(201);
		expect(sooner.json.expiresAt).toBe(parent.json.expiresAt - 1000);
	});

	it("the keys a member made hold no more than the member: narrowed on a demotion, emptied on removal, also the keys those keys made", async () => {
		const t = await seedTenant({ plan: "pro", members: { admin: "org:admin", other: "org:admin" } });
		captureTenantEvents(vi);
		const key = await call<{ key: string; id: string }>("POST", `${t.base}/api-keys`, {
			token: t.admin.token,
			body: { name: "mine", permissions: ["org:members:read", "org:api_keys:manage", "org:products:write"] },
		});
		expect(key.status, key.text).toBe(201);
		const child = await call<{ key: string }>("POST", `${t.base}/api-keys`, {
			token: key.json.key,
			body: { name: "child", permissions: ["org:members:read", "org:products:write"] },
		});
		expect(child.status, child.text).toBe(201);
		// Another admin's key is left alone.
		const others = await call<{ key: string }>("POST", `${t.base}/api-keys`, {
			token: t.other.token,
			body: { name: "theirs", permissions: ["org:products:write"] },
		});
		const membership = (type: string, role: string) =>
			messageFor(envelope(type, membershipData(`orgmem_${t.admin.id}`, t.orgId, t.admin.id, { role, updatedAt: Date.now() })));

		// Demoted to org:member in Clerk: what org:member does not grant goes.
		await deliver([membership("organizationMembership.updated", "org:member")]);
		resetApiKeyState();
		expect(await keyPermissions(key.json.key)).toEqual(["org:members:read"]);
		expect(await keyPermissions(child.json.key)).toEqual(["org:members:read"]);
		expect((await call("GET", `${t.base}/members`, { token: key.json.key })).status).toBe(200);
		const write = await call("POST", `${t.base}/categories`, { token: child.json.key, body: { name: "C", slug: uid("c") } });
		expect(write.status, write.text).toBe(403);
		expect(await keyPermissions(others.json.key)).toEqual(["org:products:write"]);

		// Removed: nothing is left.
		await deliver([membership("organizationMembership.deleted", "org:member")]);
		resetApiKeyState();
		expect(await keyPermissions(key.json.key)).toEqual([]);
		expect((await call("GET", `${t.base}/members`, { token: key.json.key })).status).toBe(403);
		expect((await call("GET", `${t.base}/members`, { token: child.json.key })).status).toBe(403);
		expect(await keyPermissions(others.json.key)).toEqual(["org:products:write"]);
	});

	it("a deleted user's keys hold nothing, in every organization", async () => {
		const t = await seedTenant({ plan: "pro", members: { admin: "org:admin", other: "org:admin" } });
		captureTenantEvents(vi);
		const key = await call<{ key: string }>("POST", `${t.base}/api-keys`, { token: t.admin.token, body: { name: "k", permissions: ["org:members:read"] } });
		expect(key.status, key.text).toBe(201);
		await deliver([messageFor(envelope("user.deleted", { id: t.admin.id, object: "user", deleted: true }))]);
		resetApiKeyState();
		expect(await keyPermissions(key.json.key)).toEqual([]);
	});

	it("the member routes narrow them at once: an admin demoting another admin", async () => {
		const t = await seedTenant({ plan: "pro", members: { admin: "org:admin", other: "org:admin" } });
		const clerk = fakeClerkApi();
		stubNetwork(vi, { routes: clerk.routes });
		captureTenantEvents(vi);
		const key = await call<{ key: string }>("POST", `${t.base}/api-keys`, {
			token: t.other.token,
			body: { name: "theirs", permissions: ["org:members:read", "org:members:manage"] },
		});
		expect((await call("PATCH", `${t.base}/members/${t.other.id}`, { token: t.admin.token, body: { role: "org:member" } })).status).toBe(200);
		expect(await keyPermissions(key.json.key)).toEqual(["org:members:read"]);
	});
});

describe("found by a second review of the fixes: keys and invitations", () => {
	const removed = (orgId: string, userId: string, role: string) =>
		deliver([messageFor(envelope("organizationMembership.deleted", membershipData(`orgmem_${userId}`, orgId, userId, { role, updatedAt: Date.now() })))]);

	it("a key made by a key since revoked (before revocation took the keys it made along) is narrowed with its member too", async () => {
		const t = await seedTenant({ plan: "pro", members: { admin: "org:admin", other: "org:admin" } });
		captureTenantEvents(vi);
		const a = await call<{ key: string; id: string }>("POST", `${t.base}/api-keys`, {
			token: t.admin.token,
			body: { name: "a", permissions: ["org:members:read", "org:api_keys:manage", "org:products:write"] },
		});
		const b = await call<{ key: string }>("POST", `${t.base}/api-keys`, { token: a.json.key, body: { name: "b", permissions: ["org:members:read", "org:products:write"] } });
		expect(b.status, b.text).toBe(201);
		// Revoked as a release before this one did it: the key alone.
		await env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?").bind(Date.now(), a.json.id).run();
		await removed(t.orgId, t.admin.id, "org:admin");
		resetApiKeyState();
		expect(await keyPermissions(b.json.key)).toEqual([]);
	});

	it("rotation hands out a secret: an expiring key rotates only keys expiring no later; a non-admin only itself and the keys it made", async () => {
		const t = await seedTenant({ plan: "pro", members: { admin: "org:admin", mgr: { permissions: ["org:api_keys:manage", "org:products:write"] } } });
		captureTenantEvents(vi);
		const lasting = await call<{ id: string }>("POST", `${t.base}/api-keys`, { token: t.admin.token, body: { name: "c", permissions: ["org:products:write"] } });
		const expiring = await call<{ key: string; id: string; expiresAt: number }>("POST", `${t.base}/api-keys`, {
			token: t.admin.token,
			body: { name: "ci-1day", permissions: ["org:api_keys:manage", "org:products:write"], expiresAt: Date.now() + DAY },
		});
		const rotate = (id: string, token: string) => call<{ key: string }>("POST", `${t.base}/api-keys/${id}/rotate`, { token });
		expect((await rotate(lasting.json.id, expiring.json.key)).status).toBe(403);
		// The admin's key, rotated by a member holding its permissions: refused (its secret would outlive the member).
		expect((await rotate(lasting.json.id, t.mgr.token)).status).toBe(403);
		// Its own key, and a key that key made, it may rotate; and a key itself.
		const own = await call<{ key: string; id: string }>("POST", `${t.base}/api-keys`, {
			token: t.mgr.token,
			body: { name: "mine", permissions: ["org:api_keys:manage", "org:products:write"] },
		});
		const child = await call<{ id: string }>("POST", `${t.base}/api-keys`, { token: own.json.key, body: { name: "child", permissions: ["org:products:write"] } });
		expect((await rotate(child.json.id, t.mgr.token)).status).toBe(200);
		expect((await rotate(own.json.id, t.mgr.token)).status).toBe(200);
		expect((await rotate(expiring.json.id, expiring.json.key)).status).toBe(200);
		expect((await rotate(lasting.json.id, t.admin.token)).status).toBe(200);
	});

	it("a pending invitation for a role beyond the caller cannot be revoked by it", async () => {
		const t = await seedTenant({ plan: "pro", members: { admin: "org:admin", mgr: { permissions: ["org:members:manage"] } } });
		const clerk = fakeClerkApi();
		stubNetwork(vi, { routes: clerk.routes });
		captureTenantEvents(vi);
		const inv = await call<{ id: string }>("POST", `${t.base}/invitations`, { token: t.admin.token, body: { emailAddress: "cto@example.com", role: "org:admin" } });
		expect(inv.status, inv.text).toBe(201);
		expect((await call("DELETE", `${t.base}/invitations/${inv.json.id}`, { token: t.mgr.token })).status).toBe(403);
		expect((await call("DELETE", `${t.base}/invitations/${inv.json.id}`, { token: t.admin.token })).status).toBe(200);
	});
});

describe("OWASP API4: outgoing webhook endpoints are bounded", () => {
	it(`an organization registers at most ${MAX_ENDPOINTS} endpoints (each event fans out to all): 409 past them`, async () => {
		const t = await seedTenant({ plan: "pro" });
		captureTenantEvents(vi);
		const statuses: number[] = [];
		for (let i = 0; i <= MAX_ENDPOINTS; i++) {
			const res = await call("POST", `${t.base}/webhooks`, {
				token: t.admin.token,
				body: { url: `https://hooks.tenant.example.com/${i}`, eventTypes: ["*"] },
			});
			statuses.push(res.status);
		}
		expect(statuses.filter((s) => s === 201)).toHaveLength(MAX_ENDPOINTS);
		expect(statuses.at(-1)).toBe(409);
		const list = await call<{ data: { id: string }[] }>("GET", `${t.base}/webhooks`, { token: t.admin.token });
		expect(list.json.data).toHaveLength(MAX_ENDPOINTS);
		// Deleting one makes room again.
		expect((await call("DELETE", `${t.base}/webhooks/${list.json.data[0]!.id}`, { token: t.admin.token })).status).toBe(204);
		const again = await call("POST", `${t.base}/webhooks`, { token: t.admin.token, body: { url: "https://hooks.tenant.example.com/again", eventTypes: ["*"] } });
		expect(again.status, again.text).toBe(201);
	});
});
