// A clock for the lock server's LockTable that a test moves by hand; timers
// fire when it passes them.

import type { TableClock } from "../lib/server/lock_table.ts";

const EPOCH = 1_700_000_000_000;

/** A hand-moved TableClock. */
export class FakeClock implements TableClock {
  time = 0;
  /** The wall clock: follows `time`, and may be stepped by a test. */
  wall = EPOCH;
  timers: { at: number; fn: () => void; live: boolean }[] = [];
  /** How much early a timer set for longer than this fires (a real timer may). */
  readonly early: number;

  constructor(early = 0) {
    this.early = early;
  }

  now = () => this.time;
  wallNow = () => this.wall;
  setTimer = (fn: () => void, ms: number) => {
    // (A real clock moves on: a timer set for less than `early` fires on time.)
    const timer = { at: this.time + (ms > this.early ? ms - this.early : ms), fn, live: true };
    this.timers.push(timer);
    return { clear: () => (timer.live = false), unref: () => {} };
  };

  /** Moves the clock `ms` on, firing the timers it passes in their order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.live && t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.time = Math.max(this.time, due.at);
      this.wall = EPOCH + this.time;
      due.live = false;
      due.fn();
    }
    this.time = end;
    this.wall = EPOCH + end;
    this.timers = this.timers.filter((t) => t.live);
  }
}
