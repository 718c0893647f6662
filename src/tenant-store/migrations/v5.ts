/**
 * Tenant store schema v5 (contraction of v3): drops products_fts and its triggers. Since v3 every
 * search of a store goes through products_search; the release before this one (v4) already read only
 * that, so rolling back one release still searches. Every product write maintained both trigram
 * indexes until now: one is enough (issue 17).
 */
export const v5: string[] = [
	"DROP TRIGGER IF EXISTS products_fts_ai",
	"DROP TRIGGER IF EXISTS products_fts_ad",
	"DROP TRIGGER IF EXISTS products_fts_au",
	"DROP TABLE IF EXISTS products_fts",
];
