import { v1 } from "./v1";
import { v2 } from "./v2";
import { v3 } from "./v3";
import { v4 } from "./v4";
import { v5 } from "./v5";
import { v6 } from "./v6";

/**
 * The tenant store's schema versions, oldest first; version N is TENANT_MIGRATIONS[N - 1]. Rules for
 * a new version (a store runs it on first use after the deploy that ships it, while other stores and
 * older Worker versions still run the previous code): expand only — add tables, columns with defaults,
 * indexes, triggers; never drop, rename or change a column the previous version reads. A contraction
 * (dropping what no deployed code reads any more) ships one release later as its own version.
 */
export const TENANT_MIGRATIONS: readonly (readonly string[])[] = [v1, v2, v3, v4, v5, v6];

export const LATEST_TENANT_SCHEMA = TENANT_MIGRATIONS.length;
