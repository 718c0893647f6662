/** Tolerant readers for third-party JSON payloads (Clerk, Razorpay, Stripe): wrong types read as absent. */
export type Data = Record<string, unknown>;
export const str = (v: unknown): string | null => (typeof v === "string" && v.length > 0 ? v : null);
export const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
export const obj = (v: unknown): Data => (typeof v === "object" && v !== null ? (v as Data) : {});
