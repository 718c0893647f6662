/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header
 * `00-<trace-id: 32 hex>-<parent-id: 16 hex>-<flags: 2 hex>`, lowercase.
 *
 * A unit of work (a request, a queue message, a cron run) continues the trace its caller sent, or
 * starts one, and is one span of it: the trace id is shared along the whole path (client -> Worker ->
 * tenant store, webhook ingest -> queue -> consumer) and goes into every log line; each hop has its
 * own span id, sent onwards as the parent of the next hop.
 */
export interface TraceContext {
	/** 32 lowercase hex digits, never all zeros. */
	traceId: string;
	/** This unit of work's span: 16 lowercase hex digits, never all zeros. */
	spanId: string;
	/** The caller's span, when the trace came with the request or message. */
	parentSpanId?: string;
	/** The caller's sampling decision (a trace started here is sampled: every request is logged). */
	sampled: boolean;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZEROS = /^0+$/;

/** Each byte's two hex digits, computed once (every request draws 24 random bytes). */
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

function randomHex(bytes: number): string {
	const buf = crypto.getRandomValues(new Uint8Array(bytes));
	let out = "";
	for (let i = 0; i < buf.length; i++) out += HEX[buf[i] as number];
	// All zeros is invalid in both fields; 2^-64 at worst, but then draw again.
	return ZEROS.test(out) ? randomHex(bytes) : out;
}

/** A fresh trace id (16 random bytes). */
export const newTraceId = (): string => randomHex(16);

/**
 * The caller's trace from a `traceparent` value, or null when it is absent or malformed (the header is
 * then ignored, as the specification says). Version 00 must be exactly 55 characters; a later version
 * may append fields after a `-`, which are ignored; version ff, and all-zero ids, are invalid.
 */
export function parseTraceparent(value: string | null | undefined): { traceId: string; parentId: string; sampled: boolean } | null {
	if (!value) return null;
	const m = TRACEPARENT.exec(value.trim());
	if (!m) return null;
	const [, version, traceId, parentId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
	if (version === "ff" || (version === "00" && rest !== undefined)) return null;
	if (ZEROS.test(traceId) || ZEROS.test(parentId)) return null;
	return { traceId, parentId, sampled: (Number.parseInt(flags, 16) & 1) === 1 };
}

/**
 * A span for this unit of work: a child of the caller's trace when `traceparent` is valid, else the
 * root of a new trace.
 * @example const trace = continueTrace(c.req.header("traceparent"))
 */
export function continueTrace(traceparent?: string | null): TraceContext {
	const parent = parseTraceparent(traceparent);
	if (!parent) return { traceId: newTraceId(), spanId: randomHex(8), sampled: true };
	return { traceId: parent.traceId, spanId: randomHex(8), parentSpanId: parent.parentId, sampled: parent.sampled };
}

/** The `traceparent` that names this span as the parent (sent onwards, and answered to the caller). */
export function traceparentOf(trace: TraceContext): string {
	return `00-${trace.traceId}-${trace.spanId}-${trace.sampled ? "01" : "00"}`;
}

/** For schemas: a valid version-00 `traceparent` as this service writes it. */
export const TRACEPARENT_PATTERN = "^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$";
