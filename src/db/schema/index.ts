// The D1 schema, one module per domain; drizzle-kit reads this folder (drizzle.config.ts) and the app
// imports everything from here ("../db/schema").
export * from "./audit";
export * from "./billing";
export * from "./identity";
export * from "./outgoing";
export * from "./store";
export * from "./usage";
export * from "./webhooks";
