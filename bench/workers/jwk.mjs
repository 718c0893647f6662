// Peer of GET /api/me in `npm run bench -- cost`: hono/jwk with the same public key as a local JWK
// (no JWKS fetch), in a small Hono app answering the token's user and organization.
import { Hono } from "hono";
import { jwk } from "hono/jwk";

// Built once per isolate from the binding (the key does not change between requests).
let verify;
const app = new Hono();
app.use("/api/me", (c, next) => {
	verify ??= jwk({ keys: [JSON.parse(c.env.PUBLIC_JWK)], alg: ["RS256"] });
	return verify(c, next);
});
app.get("/api/me", (c) => {
	const claims = c.get("jwtPayload");
	return c.json({ user: { id: claims.sub }, organization: claims.o ? { id: claims.o.id, role: claims.o.rol } : null });
});

export default app;
