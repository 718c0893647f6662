// Peer of GET /api/me in `npm run bench -- cost`: Clerk's own SDK verifying the same session token
// networkless (`verifyToken` with the PEM public key, as Clerk documents for CLERK_JWT_KEY), in a
// small Hono app answering the token's user and organization.
import { verifyToken } from "@clerk/backend";
import { Hono } from "hono";

const app = new Hono();
app.get("/api/me", async (c) => {
	const m = /^Bearer (.+)$/i.exec(c.req.header("authorization") ?? "");
	if (!m) return c.json({ error: "unauthorized" }, 401);
	try {
		const claims = await verifyToken(m[1], { jwtKey: c.env.CLERK_JWT_KEY });
		return c.json({ user: { id: claims.sub }, organization: claims.o ? { id: claims.o.id, role: claims.o.rol } : null });
	} catch {
		return c.json({ error: "invalid token" }, 401);
	}
});

export default app;
