// The wall clock with sub-millisecond resolution, agreeing across processes.
//
// `performance.timeOrigin + performance.now()` does not: each process fixes
// its time origin once, at start-up, and in processes started on a busy
// machine it was measurably off (up to 0.7 ms ahead here; a torture run's port-kind
// tokens came out up to 3 ms out of order) for their whole life. Date.now()
// reads the one system clock, but only to the millisecond. So the offset
// between the wall clock and the monotonic one is measured here: right
// after Date.now() turns over, `Date.now() - performance.now()` is that
// offset to within the time between the two reads, and never above it.

/** A clock source: milliseconds, as `Date.now` or `performance.now` give them. */
export type ClockSource = () => number;

/**
 * How long a calibration may wait for the millisecond to turn, in ms and in
 * reads: a wall clock that does not turn within that (a stub) gives its best.
 */
const CALIBRATION_LIMIT_MS = 3;
const CALIBRATION_LIMIT_READS = 1_000_000;
/**
 * How long a calibration may go on waiting for a tick it sees closely, in
 * ms: on a busy host the process loses the CPU across some ticks (a slice is
 * ~4 ms), but within a slice it sees a tick every millisecond.
 */
const CALIBRATION_BUDGET_MS = 50;
/** The most time between two reads around a tick for the tick to count, in ms. */
const TICK_WINDOW_MS = 0.02;
/**
 * How far a reading may stray from Date.now()'s millisecond before the
 * offset is measured again, in ms: V8's Date.now() and performance.now()
 * disagree by up to ~4 µs, and a needless calibration waits up to 1 ms.
 */
const TOLERANCE_MS = 0.01;
/**
 * A wall clock in epoch milliseconds with sub-millisecond resolution: the
 * monotonic clock plus a measured offset, kept within the millisecond that
 * `wall` shows. It is measured again when a reading leaves that millisecond
 * (the wall clock was stepped or slewed), which costs a millisecond of
 * waiting for the next tick, up to 50 ms on a host too busy to let the
 * process see one closely.
 *
 * @example A clock over the runtime's own sources
 * ```ts
 * import { calibratedWallClock } from "./_precise_wall_clock.ts";
 * const clock = calibratedWallClock(Date.now, () => performance.now());
 * console.log(Math.abs(clock() - Date.now()) <= 1); // true
 * ```
 *
 * @param wall Epoch milliseconds, whole (Date.now).
 * @param monotonic Milliseconds from any fixed start, fractional (performance.now).
 * @returns The clock.
 */
export function calibratedWallClock(wall: ClockSource, monotonic: ClockSource): () => number {
  let offset: number | null = null;
  const calibrate = (): number => {
    const start = monotonic();
    let since = start;
    let shown = wall();
    let limit = start + CALIBRATION_LIMIT_MS;
    // Every estimate errs low, by up to the time around its tick: the
    // largest is the best, if no tick is seen closely within the budget.
    let best = -Infinity;
    for (let reads = 1;; reads++) {
      const before = monotonic();
      const now = wall();
      const mono = monotonic();
      if (now !== shown) {
        // The tick came after the previous wall read, itself after `since`,
        // and before this one, itself before `mono`: the offset is known to
        // within `mono - since`. Bounding it by a reading taken after the
        // previous wall read would miss a pause just before that reading,
        // and leave the offset short by the pause for as long as it is used.
        if (mono - since <= TICK_WINDOW_MS) return now - mono;
        // The process lost the CPU around the tick: the next one is waited for.
        best = Math.max(best, now - mono);
        limit = mono + CALIBRATION_LIMIT_MS;
      }
      // `before`, not `mono`: a pause after the wall read is no sign of a stub.
      if (
        before > limit || mono - start > CALIBRATION_BUDGET_MS || reads >= CALIBRATION_LIMIT_READS
      ) {
        return Math.max(best, now - mono);
      }
      shown = now;
      since = before;
    }
  };
  return () => {
    // A reading after a calibration is checked too; one that strays after
    // two gives the wall clock's millisecond. None is below that millisecond:
    // that caps what an offset found on a host too busy to see a tick
    // closely, or not yet measured again, can put a reading behind.
    for (let tries = 1;; tries++) {
      offset ??= calibrate();
      const before = wall();
      const reading = monotonic() + offset;
      // The real time of the reading lies in [before, after + 1).
      if (reading >= before - TOLERANCE_MS && reading < wall() + 1 + TOLERANCE_MS) {
        return Math.max(reading, before);
      }
      if (tries >= 3) return before;
      offset = null;
    }
  };
}

/**
 * Epoch milliseconds with sub-millisecond precision, the same in every
 * process of this host: tokens of two hand-offs within one millisecond, in
 * two processes that never saw each other's token, still come in order.
 */
export const preciseWallClock: () => number = calibratedWallClock(
  Date.now,
  () => performance.now(),
);
