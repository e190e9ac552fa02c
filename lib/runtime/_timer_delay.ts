// Timer delays the runtimes keep as given: over 2^31 - 1 ms Node fires after
// 1 ms and Deno wraps around, so a timer for a 40-day lease would fire at
// once. Capped, it fires early, after about 24.8 days; deadline timers go
// through lib/_timer_at.ts, which then arms again, and the schedulers look
// at the clock when their timer fires.

/** The longest delay every runtime keeps, ms. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** `ms` within what every runtime's setTimeout keeps (NaN and negatives: 0). */
export function timerDelay(ms: number): number {
  return ms > 0 ? Math.min(ms, MAX_TIMER_DELAY_MS) : 0;
}
