import { createRouter } from "../../lib/create-app";

/**
 * The script is Redoc's standalone bundle (devDependency `redoc`, pinned), copied from node_modules into
 * the static assets directory (public/, git-ignored) by scripts/vendor-docs.mjs and served by Workers
 * static assets: the page loads nothing from another origin and the viewer is not in the Worker bundle.
 */
const DOCS_SCRIPT = "/docs/redoc.standalone.js";

const DOCS_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>API reference</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body { margin: 0; }</style></head>
<body><redoc spec-url="/api/openapi.json"></redoc>
<script src="${DOCS_SCRIPT}"></script></body></html>`;

/**
 * Everything the page may load comes from this origin: the viewer script, the document, blob: for Redoc's
 * search worker and its download link, inline styles (styled-components). The one image Redoc loads from
 * its CDN is replaced when the bundle is copied (scripts/vendor-docs.mjs); the policy would block it too.
 */
const DOCS_CSP = [
	"default-src 'none'",
	"script-src 'self'",
	"style-src 'self' 'unsafe-inline'",
	"img-src 'self' data:",
	"font-src 'self' data:",
	"connect-src 'self'",
	"worker-src 'self' blob:",
	"base-uri 'none'",
	"form-action 'none'",
	"frame-ancestors 'none'",
].join("; ");

/** GET /docs: the interactive API reference (Redoc) rendering /api/openapi.json, served from this Worker. */
export const docsRouter = createRouter().get("/docs", (c) => c.html(DOCS_HTML, 200, { "Content-Security-Policy": DOCS_CSP }));
