/** What a usage ledger answers when calls are added (services/usage-ledger.ts). */
export interface AddResult {
	month: string;
	monthUsed: number;
	quota: number;
	/** Thresholds (percent of quota) crossed by this call; each is reported once per month. */
	alerts: number[];
}

/** A metered call: refused (`allowed` false, nothing counted) once the month's calls reached the quota. */
export interface MeterResult extends AddResult {
	allowed: boolean;
}
