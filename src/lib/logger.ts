import { newTraceId } from "./trace";

const levels = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
export type LogLevel = keyof typeof levels;
export type LogFields = Record<string, unknown>;

export interface Logger {
	debug(msg: string, fields?: LogFields): void;
	info(msg: string, fields?: LogFields): void;
	warn(msg: string, fields?: LogFields): void;
	error(msg: string, fields?: LogFields): void;
	child(fields: LogFields): Logger;
	/** Whether a line at `level` is written: a caller skips assembling fields nobody will read. */
	enabled(level: Exclude<LogLevel, "silent">): boolean;
}

/**
 * One JSON object per line, so Workers Logs / Logpush can index every field. Every line carries a
 * `traceId` (lib/trace.ts): the one in `base` (a request's, a queue message's), else one drawn for this
 * logger, so the lines of one unit of work (a queue batch, a cron run, an alarm) still join up.
 * @example createLogger(config.LOG_LEVEL, { requestId, traceId: trace.traceId, spanId: trace.spanId })
 */
export function createLogger(level: LogLevel, fields: LogFields = {}): Logger {
	const base: LogFields = typeof fields.traceId === "string" ? fields : { ...fields, traceId: newTraceId() };
	const min = levels[level];
	const emit = (lvl: Exclude<LogLevel, "silent">, msg: string, fields?: LogFields) => {
		if (levels[lvl] < min) return;
		const line = JSON.stringify({ level: lvl, msg, time: new Date().toISOString(), ...base, ...fields });
		if (lvl === "error") console.error(line);
		else if (lvl === "warn") console.warn(line);
		else console.log(line);
	};
	return {
		debug: (m, f) => emit("debug", m, f),
		info: (m, f) => emit("info", m, f),
		warn: (m, f) => emit("warn", m, f),
		error: (m, f) => emit("error", m, f),
		child: (fields) => createLogger(level, { ...base, ...fields }),
		enabled: (lvl) => levels[lvl] >= min,
	};
}

export function errorFields(err: unknown): LogFields {
	if (err instanceof Error) return { error: err.message, errorName: err.name, stack: err.stack };
	return { error: String(err) };
}
