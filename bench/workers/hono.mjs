// Baseline of `npm run bench -- cost`: a bare Hono app answering JSON, nothing else (no middleware).
import { Hono } from "hono";

const app = new Hono();
app.get("/api/health", (c) => c.json({ status: "ok", service: "bare-hono" }));

export default app;
