import { usageLedgerTables } from "../../services/usage-ledger";

/**
 * Tenant store schema v4 (expand only): the tenant's usage ledger (services/usage-ledger.ts), counted
 * by the store itself for every call it serves or is asked to meter, so the monthly quota is exact and
 * a tenant request makes no call to another object. API calls per UTC day, the quota alerts sent, and
 * each month's usage report to Stripe. A store starts its ledger from the D1 rollups of the
 * UsageCounter object that counted the tenant before (TenantStoreObject.usage, once).
 */
export const v4: string[] = usageLedgerTables("usage_");
