/** Opaque ids with a type prefix, e.g. newId("prd") → "prd_3f2a…" (UUIDv4, no dashes). */
export const newId = (prefix: string) => `${prefix}_${crypto.randomUUID().replaceAll("-", "")}`;
