/**
 * Tenant store schema v6 (expand only): when an endpoint's current run of failed delivery attempts began
 * (services/outgoing-webhooks.ts). v5 code ignores the column and leaves it as it is on a success; v6 code
 * starts a run afresh whenever the count it reads is 0, and before disabling an endpoint checks for a
 * success after the recorded start (v5 code may have failed again since), so a stale value disables nothing.
 */
export const v6: string[] = ["ALTER TABLE `webhook_endpoints` ADD `failing_since` integer"];
