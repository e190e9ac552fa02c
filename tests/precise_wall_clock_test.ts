import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { calibratedWallClock, preciseWallClock } from "../lib/_precise_wall_clock.ts";

/**
 * A simulated host: real time advances a little with every read of either
 * clock; the wall clock shows it truncated to the millisecond (as Date.now()
 * does), the monotonic one shows it minus an offset that a test can step.
 */
function simulatedHost(offset: number) {
  const host = {
    real: 1_700_000_000_000.25,
    offset,
    wall: () => Math.floor(host.real += 0.0013),
    monotonic: () => (host.real += 0.0013) - host.offset,
  };
  return host;
}

describe("preciseWallClock", () => {
  test("agrees with the real time to within microseconds, whatever the process's time origin", () => {
    const host = simulatedHost(1_699_999_000_000.7);
    const clock = calibratedWallClock(host.wall, host.monotonic);
    for (let i = 0; i < 1000; i++) {
      const before = host.real;
      const reading = clock();
      assert.ok(
        reading >= before - 0.01 && reading <= host.real,
        `${reading} vs ${before}..${host.real}`,
      );
    }
  });

  test("measures its offset again when the wall clock is stepped or slewed either way", () => {
    const host = simulatedHost(1_699_999_000_000.7);
    const clock = calibratedWallClock(host.wall, host.monotonic);
    clock();
    for (const step of [3, -3, 0.4, -0.4, 0.05, 250]) {
      // The wall clock moves; the monotonic one does not.
      host.real += step;
      host.offset += step;
      // Every reading stays within the millisecond the wall clock shows...
      for (let i = 0; i < 12; i++) {
        const before = host.real;
        const reading = clock();
        assert.ok(
          reading >= Math.floor(before) && reading < host.real + 1,
          `after a ${step} ms step`,
        );
        host.real += 0.1;
      }
      // ...and once readings have spanned a millisecond, it is exact again.
      const before = host.real;
      const reading = clock();
      assert.ok(reading >= before - 0.01 && reading <= host.real, `${step} ms step not caught up`);
    }
  });

  test("a calibration preempted between its two reads is caught before its first reading", () => {
    const host = simulatedHost(1_699_999_000_000.7);
    let last: number | null = null;
    let preempted = false;
    const clock = calibratedWallClock(() => {
      const now = host.wall();
      // The process loses the CPU for 0.6 ms right after it saw the tick.
      if (last !== null && now !== last && !preempted) {
        preempted = true;
        host.real += 0.6;
      }
      last = now;
      return now;
    }, host.monotonic);
    const reading = clock();
    assert.ok(preempted);
    // Read a few simulated reads ago: within 10 µs of the real time now.
    assert.ok(reading <= host.real && reading >= host.real - 0.01, `${reading} vs ${host.real}`);
  });

  test("a pause between a wall read and the monotonic read after it, as the millisecond turns, does not leave the offset short", () => {
    const host = simulatedHost(1_699_999_000_000.7);
    let preempted = false;
    const clock = calibratedWallClock(() => {
      const now = host.wall();
      // The process loses the CPU for 0.2 ms right after a wall read late in
      // a millisecond: the tick falls in the pause, before the next reads.
      if (!preempted && host.real % 1 >= 0.95) {
        preempted = true;
        host.real += 0.2;
      }
      return now;
    }, host.monotonic);
    clock();
    assert.ok(preempted);
    // Readings anywhere in later milliseconds are exact: an offset measured
    // short would show at every one of them, and would be caught only near a tick.
    for (const into of [0.3, 0.5, 0.9]) {
      host.real = Math.floor(host.real) + 3 + into;
      const before = host.real;
      const reading = clock();
      assert.ok(
        reading >= before - 0.021 && reading <= host.real,
        `${((reading - before) * 1000).toFixed(1)} µs off, ${into} ms into a millisecond`,
      );
    }
  });

  test("gives its best at once when a stub clock never turns", () => {
    const clock = calibratedWallClock(() => 5_000, () => 1);
    assert.equal(clock(), 5_000);
  });

  test("stays within the millisecond Date.now() shows, give or take the 10 µs V8's two clocks differ", () => {
    for (let i = 0; i < 10_000; i++) {
      const before = Date.now();
      const reading = preciseWallClock();
      const after = Date.now();
      assert.ok(
        reading >= before - 0.01 && reading < after + 1.01,
        `${reading} outside ${before}..${after + 1}`,
      );
    }
  });
});
