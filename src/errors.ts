import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";

export const errorCodes = [
	"BAD_REQUEST",
	"VALIDATION_FAILED",
	"UNAUTHORIZED",
	"INVALID_TOKEN",
	"PAYMENT_REQUIRED",
	"FORBIDDEN",
	"ORG_SUSPENDED",
	"NOT_FOUND",
	"CONFLICT",
	"PRECONDITION_FAILED",
	"PAYLOAD_TOO_LARGE",
	"UNSUPPORTED_MEDIA_TYPE",
	"RATE_LIMITED",
	"QUOTA_EXCEEDED",
	"BAD_ENVIRONMENT",
	"UPSTREAM_UNAVAILABLE",
	"NOT_READY",
	"METHOD_NOT_ALLOWED",
	"INTERNAL_SERVER_ERROR",
] as const;
export type ErrorCode = (typeof errorCodes)[number];

export function codeToStatus(code: ErrorCode): ContentfulStatusCode {
	switch (code) {
		case "BAD_REQUEST":
		case "VALIDATION_FAILED":
			return 400;
		case "PAYLOAD_TOO_LARGE":
			return 413;
		case "UNAUTHORIZED":
		case "INVALID_TOKEN":
			return 401;
		case "PAYMENT_REQUIRED":
			return 402;
		case "FORBIDDEN":
		case "ORG_SUSPENDED":
			return 403;
		case "NOT_FOUND":
			return 404;
		case "CONFLICT":
			return 409;
		case "PRECONDITION_FAILED":
			return 412;
		case "UNSUPPORTED_MEDIA_TYPE":
			return 415;
		case "RATE_LIMITED":
		case "QUOTA_EXCEEDED":
			return 429;
		case "METHOD_NOT_ALLOWED":
			return 405;
		case "UPSTREAM_UNAVAILABLE":
		case "NOT_READY":
			return 503;
		case "BAD_ENVIRONMENT":
		case "INTERNAL_SERVER_ERROR":
			return 500;
	}
}

const titles: Record<ErrorCode, string> = {
	BAD_REQUEST: "Bad request",
	VALIDATION_FAILED: "Validation failed",
	UNAUTHORIZED: "Authentication required",
	INVALID_TOKEN: "Invalid token",
	PAYMENT_REQUIRED: "Plan upgrade required",
	FORBIDDEN: "Forbidden",
	ORG_SUSPENDED: "Organization suspended",
	NOT_FOUND: "Not found",
	CONFLICT: "Conflict",
	PRECONDITION_FAILED: "Precondition failed",
	PAYLOAD_TOO_LARGE: "Payload too large",
	UNSUPPORTED_MEDIA_TYPE: "Unsupported media type",
	RATE_LIMITED: "Too many requests",
	QUOTA_EXCEEDED: "Monthly quota exceeded",
	BAD_ENVIRONMENT: "Service misconfigured",
	UPSTREAM_UNAVAILABLE: "Upstream unavailable",
	NOT_READY: "Service not ready",
	METHOD_NOT_ALLOWED: "Method not allowed",
	INTERNAL_SERVER_ERROR: "Internal server error",
};

export interface FieldError {
	path: string;
	message: string;
}

/**
 * The one error type handlers throw. `onError` renders it as problem+json.
 * @example throw new ApiError("FORBIDDEN", "missing permission org:members:read")
 */
export class ApiError extends HTTPException {
	readonly code: ErrorCode;
	readonly detail: string;
	readonly headers: Record<string, string>;
	readonly errors?: FieldError[];

	constructor(
		code: ErrorCode,
		detail: string,
		opts: { headers?: Record<string, string>; errors?: FieldError[]; cause?: unknown } = {},
	) {
		super(codeToStatus(code), { message: detail, cause: opts.cause });
		this.code = code;
		this.detail = detail;
		this.headers = opts.headers ?? {};
		this.errors = opts.errors;
	}
}

export interface Problem {
	type: string;
	title: string;
	status: number;
	detail: string;
	requestId: string;
	/** The request's W3C trace id (extension member): the `traceId` of its log lines. */
	traceId: string;
	code: ErrorCode;
	errors?: FieldError[];
}

/** What identifies the request a problem answers: its id and its trace id. */
export interface ProblemIds {
	requestId: string;
	traceId: string;
}

export function problemBody(code: ErrorCode, detail: string, ids: ProblemIds, errors?: FieldError[]): Problem {
	return {
		type: `https://errors.edge-tenant.dev/${code.toLowerCase().replaceAll("_", "-")}`,
		title: titles[code],
		status: codeToStatus(code),
		detail,
		requestId: ids.requestId,
		traceId: ids.traceId,
		code,
		...(errors ? { errors } : {}),
	};
}

/** A problem+json Response, for places outside Hono's onError (queue, entry). */
/**
 * zod issues as per-field errors; unknown fields are reported one by one, so a client sees exactly
 * which to drop. A value that matches no branch of a union is reported against the branch it came
 * closest to (the fewest issues; the first on a tie), not as one "Invalid input".
 */
export function fieldErrors(issues: readonly z.core.$ZodIssue[]): FieldError[] {
	return issues.flatMap((i): FieldError[] => {
		if (i.code === "unrecognized_keys") return i.keys.map((k) => ({ path: [...i.path, k].map(String).join("."), message: "unknown field" }));
		if (i.code === "invalid_union" && i.errors.length > 0) {
			const closest = i.errors.reduce((best, branch) => (branch.length < best.length ? branch : best));
			return fieldErrors(closest.map((b) => ({ ...b, path: [...i.path, ...b.path] }) as z.core.$ZodIssue));
		}
		return [{ path: i.path.map(String).join(".") || "(root)", message: i.message }];
	});
}

export function problemResponse(
	code: ErrorCode,
	detail: string,
	ids: ProblemIds,
	headers: Record<string, string> = {},
	errors?: FieldError[],
): Response {
	return new Response(JSON.stringify(problemBody(code, detail, ids, errors)), {
		status: codeToStatus(code),
		headers: { "content-type": "application/problem+json", "cache-control": "no-store", "x-request-id": ids.requestId, ...headers },
	});
}

export function statusToCode(status: number): ErrorCode {
	switch (status) {
		case 400:
			return "BAD_REQUEST";
		case 401:
			return "UNAUTHORIZED";
		case 402:
			return "PAYMENT_REQUIRED";
		case 403:
			return "FORBIDDEN";
		case 404:
			return "NOT_FOUND";
		case 405:
			return "METHOD_NOT_ALLOWED";
		case 409:
			return "CONFLICT";
		case 412:
			return "PRECONDITION_FAILED";
		case 413:
			return "PAYLOAD_TOO_LARGE";
		case 415:
			return "UNSUPPORTED_MEDIA_TYPE";
		case 429:
			return "RATE_LIMITED";
		case 503:
			return "UPSTREAM_UNAVAILABLE";
		default:
			return status >= 500 ? "INTERNAL_SERVER_ERROR" : "BAD_REQUEST";
	}
}

/** The challenge of every 401 for a presented credential (RFC 6750). */
export const INVALID = { "WWW-Authenticate": 'Bearer error="invalid_token"' };
/** The one detail of every 401 for a presented credential: the reason is only logged. */
export const INVALID_DETAIL = "the credential is invalid or expired";
