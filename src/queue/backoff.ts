const MAX_DELAY_SECONDS = 15 * 60;

/** Exponential backoff for the n-th failed attempt (attempts starts at 1): 2, 4, 8 … s, capped at 15 min. */
export function backoffSeconds(attempts: number): number {
	return Math.min(2 ** Math.max(1, attempts), MAX_DELAY_SECONDS);
}
