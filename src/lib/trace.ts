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

/**
 * Random ids from `crypto.randomUUID()`, which costs a fraction of `getRandomValues` into a fresh array
 * in workerd (both are the runtime's CSPRNG). A version-4 UUID's 32 hex digits carry 122 random bits: its
 * version digit is always 4 and its variant digit one of 8, 9, a or b, so neither id is ever all zeros.
 */
const uuidHex = (): string => {
	const u = crypto.randomUUID();
	return u.slice(0, 8) + u.slice(9, 13) + u.slice(14, 18) + u.slice(19, 23) + u.slice(24);
};

/** A fresh trace id: 32 hex digits, 122 of their bits random. */
export const newTraceId = (): string => uuidHex();

/** A fresh span id: 16 hex digits (the variant digit and the 12 after it of a UUID), 62 bits random. */
const newSpanId = (): string => {
	const u = crypto.randomUUID();
	return u.slice(19, 23) + u.slice(24);
};

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
	if (!parent) return { traceId: newTraceId(), spanId: newSpanId(), sampled: true };
	return { traceId: parent.traceId, spanId: newSpanId(), parentSpanId: parent.parentId, sampled: parent.sampled };
}

/** The `traceparent` that names this span as the parent (sent onwards, and answered to the caller). */
export function traceparentOf(trace: TraceContext): string {
	return `00-${trace.traceId}-${trace.spanId}-${trace.sampled ? "01" : "00"}`;
}

/** For schemas: a valid version-00 `traceparent` as this service writes it. */
export const TRACEPARENT_PATTERN = "^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$";
