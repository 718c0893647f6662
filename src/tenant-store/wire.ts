/**
 * A request and its answer as the gateway and a tenant store exchange them over RPC: plain values, the
 * body as bytes. A `Request` or `Response` crosses RPC with its body as a stream (a pipe set up per
 * call), which cost more than the store's own work for a page read; the API's bodies are small JSON
 * (the Worker's body limit applies before the gateway), so they travel whole.
 */
export interface WireRequest {
	method: string;
	url: string;
	/** Name-value pairs (RPC's types see them as string[][]). */
	headers: string[][];
	body: ArrayBuffer | null;
}

export interface WireResponse {
	status: number;
	headers: string[][];
	body: ArrayBuffer | null;
}

const pairs = (headers: string[][]) => headers as [string, string][];

const bodyOf = (bytes: ArrayBuffer) => (bytes.byteLength > 0 ? bytes : null);

/** `req` for the store, with `set` replacing headers of the same name. */
export async function wireRequest(req: Request, set: Record<string, string>): Promise<WireRequest> {
	const headers = new Headers(req.headers);
	for (const [name, value] of Object.entries(set)) headers.set(name, value);
	const body = req.method === "GET" || req.method === "HEAD" ? null : bodyOf(await req.arrayBuffer());
	return { method: req.method, url: req.url, headers: [...headers], body };
}

export function requestFromWire(w: WireRequest): Request {
	return new Request(w.url, { method: w.method, headers: pairs(w.headers), body: w.body });
}

export async function wireResponse(res: Response): Promise<WireResponse> {
	return { status: res.status, headers: [...res.headers], body: res.body ? bodyOf(await res.arrayBuffer()) : null };
}

export function responseFromWire(w: WireResponse): Response {
	return new Response(w.body, { status: w.status, headers: pairs(w.headers) });
}
