// The Redis kind's heartbeat on its own, with a renewal the test scripts:
// a hand-off's short claim lease is renewed early, retried within what is
// left of it, and reported lost when no renewal is confirmed in time. A
// clock the test moves by hand times it exactly, whatever the machine's
// load; the last test runs on real timers.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Heartbeat, type RenewOutcome } from "../lib/redis/heartbeat.ts";
import { LockLostError } from "../lib/errors.ts";
import { type Runtime, runtime } from "../lib/runtime/mod.ts";

/** A monotonic clock and timers the test moves by hand. */
class FakeClock {
  time = 1_000;
  #timers: { at: number; fn: () => void; live: boolean }[] = [];
  readonly runtime: Runtime = {
    ...runtime,
    monotonic: () => this.time,
    setTimer: (fn, ms) => {
      const timer = { at: this.time + Math.max(0, ms), fn, live: true };
      this.#timers.push(timer);
      return { clear: () => void (timer.live = false), unref: () => {} };
    },
  };

  /** Moves the clock `ms` on, firing timers in order, each after the work the last one started. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      await settled();
      const due = this.#timers.filter((t) => t.live && t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.time = Math.max(this.time, due.at);
      due.live = false;
      due.fn();
    }
    this.time = end;
    this.#timers = this.#timers.filter((t) => t.live);
  }
}

/** Lets every promise callback queued so far run (a macrotask comes after them). */
const settled = () => new Promise((resolve) => setTimeout(resolve, 0));

function heartbeat(
  firstLease: number,
  renew: () => Promise<RenewOutcome>,
  clock: Runtime = runtime,
) {
  const calls: number[] = [];
  const start = clock.monotonic();
  const beat = new Heartbeat({
    runtime: clock,
    name: "hb",
    ttl: 30_000,
    lease: 20_000,
    sentAt: start,
    firstLease,
    renew: () => {
      calls.push(clock.monotonic() - start);
      return renew();
    },
    onLost: () => {},
  });
  return { beat, calls };
}

describe("Redis heartbeat", () => {
  test("a hand-off's claim lease is renewed at half of it, and the lock then outlives it", async () => {
    const clock = new FakeClock();
    const { beat, calls } = heartbeat(400, () => Promise.resolve("renewed"), clock.runtime);
    try {
      await clock.advance(700);
      assert.deepEqual(calls, [200], "one renewal, at half the claim lease");
      assert.equal(beat.signal.aborted, false, "held past the claim lease");
      assert.ok(beat.deadline > clock.time + 15_000, "the full lease counts from the renewal");
    } finally {
      beat.stop();
    }
  });

  test("a failing renewal is retried within what is left of the claim lease", async () => {
    const clock = new FakeClock();
    let failures = 2;
    const { beat, calls } = heartbeat(
      900,
      () =>
        failures-- > 0 ? Promise.reject(new Error("connection reset")) : Promise.resolve("renewed"),
      clock.runtime,
    );
    try {
      await clock.advance(1_700);
      assert.equal(calls.length, 3, `renewals at ${calls.map(Math.round).join(", ")} ms`);
      const lastChance = 900 * 0.99 - 2; // the claim lease's end, less the drift allowance
      assert.ok(calls[2] < lastChance, `the third renewal at ${calls[2]} ms, before ${lastChance}`);
      assert.equal(beat.signal.aborted, false, "the third renewal came in time");
    } finally {
      beat.stop();
    }
  });

  test("no renewal confirmed before the claim lease ends: the signal aborts with LockLostError", async () => {
    const clock = new FakeClock();
    const { beat } = heartbeat(300, () => new Promise(() => {}), clock.runtime); // never answers
    let abortedAt = 0;
    beat.signal.addEventListener("abort", () => (abortedAt = clock.time));
    await clock.advance(400);
    assert.equal(beat.signal.aborted, true);
    assert.ok(beat.signal.reason instanceof LockLostError);
    // The lease that ran out is the claim's, not the full one.
    assert.match(
      beat.signal.reason.message,
      /lease ran out \(300 ms after the lock was handed over, before its first renewal;/,
    );
    assert.equal(abortedAt - 1_000, 300 * 0.99 - 2, "aborted by its deadline timer, at the end");
  });

  test("abort listeners fire even when timers fire early and the renewal never answers", async () => {
    // Node's timers can fire over 1 ms before their time by the monotonic
    // clock; this runtime's always fire 5 ms early.
    const early: Runtime = {
      ...runtime,
      setTimer: (fn, ms) => runtime.setTimer(fn, Math.max(0, ms - 5)),
    };
    const { beat } = heartbeat(200, () => new Promise(() => {}), early);
    const aborted = new Promise<unknown>((resolve) =>
      beat.signal.addEventListener("abort", () => resolve(beat.signal.reason), { once: true })
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const reason = await Promise.race([
      aborted,
      // Only a hang guard: the 200 ms lease ends long before.
      new Promise((resolve) => timer = setTimeout(() => resolve("no abort event"), 5_000)),
    ]).finally(() => clearTimeout(timer));
    assert.ok(reason instanceof LockLostError, String(reason));
  });
});
