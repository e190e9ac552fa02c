// The port kind's review findings: its clock (tokens are wall-clock µs, so
// a clock behind by D orders a process's tokens before ones issued up to D
// earlier elsewhere) and PortLock calls made while another acquire() of the
// same object waits.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { lock, LockAbortedError, LockTimeoutError, PortLock } from "../mod.ts";
import { calibratedWallClock } from "../lib/_precise_wall_clock.ts";
import { randomHex } from "../lib/socket/handshake.ts";

/** A simulated host: every clock read costs 0.5 µs; `pause(read)` may add more before a read. */
function simulatedHost(pause: (read: number) => number) {
  const host = { real: 1_700_000_000_000.3, reads: 0 };
  const tick = () => host.real += 0.0005 + pause(++host.reads);
  const MONO_ORIGIN = 1_699_999_990_000.123;
  return {
    host,
    wall: () => (tick(), Math.floor(host.real)),
    monotonic: () => (tick(), host.real - MONO_ORIGIN),
  };
}

describe("the port kind's clock", () => {
  // Calibration reads: 1 monotonic, 2 wall, then monotonic, wall, monotonic
  // in turn; reads 3, 4 and 5 lose the CPU before, at and after a wall read.
  for (const read of [3, 4, 5]) {
    test(`one 3.5 ms preemption at calibration read ${read} leaves readings within 20 µs`, () => {
      let worst = 0;
      // Where in the millisecond the preemption ends, in 10 µs steps.
      for (let k = 0; k < 100; k++) {
        const { host, wall, monotonic } = simulatedHost((n) => n === read ? 3.5 + k * 0.01 : 0);
        const clock = calibratedWallClock(wall, monotonic);
        for (let i = 0; i < 50; i++) {
          host.real += 1 + ((i * 0.377) % 1);
          const before = host.real;
          worst = Math.max(worst, (before - clock()) * 1000);
        }
      }
      assert.ok(worst <= 20, `a reading was ${worst.toFixed(1)} µs behind the true time`);
    });
  }

  test("on a host that never lets it see a tick closely, calibration ends and no reading is below Date.now()'s millisecond", () => {
    let shown = 0;
    // Every wall read that shows a new millisecond is followed by a 30 µs pause.
    const { host, wall, monotonic } = simulatedHost(() => 0);
    const pausingWall = () => {
      const now = wall();
      if (now !== shown) host.real += 0.03;
      shown = now;
      return now;
    };
    const clock = calibratedWallClock(pausingWall, monotonic);
    const started = host.real;
    clock();
    assert.ok(host.real - started < 100, `calibration took ${host.real - started} ms`);
    for (let i = 0; i < 200; i++) {
      host.real = Math.floor(host.real) + 3 + ((i * 0.377) % 1);
      const before = host.real;
      const reading = clock();
      assert.ok(reading >= Math.floor(before), `${reading} below ${Math.floor(before)}`);
      assert.ok(reading <= host.real, `${reading} ahead of ${host.real}`);
    }
  });
});

describe("PortLock while another acquire() of the same object waits", () => {
  // The joined call waits up to 10 s: a call that wrongly waited with it
  // would take seconds, so the bounds below can leave a loaded machine room
  // (300-400 ms bounds against a 1.5 s joined wait did not).
  /** Runs `fn` while the lock is held elsewhere and `p.acquire({ timeout: 10_000 })` waits. */
  async function whileJoined(fn: (p: PortLock) => Promise<void>) {
    const key = `join-${randomHex(6)}`;
    const holder = await lock(key, { kind: "port" });
    const p = new PortLock(key);
    const first = p.acquire({ timeout: 10_000 }).catch((error) => error);
    await new Promise((resolve) => setTimeout(resolve, 20));
    try {
      await fn(p);
    } finally {
      await holder.release();
      await first;
      await p.release();
    }
  }

  test("tryAcquire() returns false at once", async () => {
    await whileJoined(async (p) => {
      const started = performance.now();
      assert.equal(await p.tryAcquire(), false);
      const took = performance.now() - started;
      assert.ok(took < 3_000, `took ${took.toFixed(0)} ms`);
    });
  });

  test("acquire({ timeout: 100 }) times out after its own 100 ms", async () => {
    await whileJoined(async (p) => {
      const started = performance.now();
      await assert.rejects(p.acquire({ timeout: 100 }), (error: unknown) => {
        assert.ok(error instanceof LockTimeoutError, String(error));
        assert.equal(error.timeout, 100);
        return true;
      });
      const took = performance.now() - started;
      assert.ok(took >= 90 && took < 3_000, `took ${took.toFixed(0)} ms`);
    });
  });

  test("acquire({ signal }) is cancelled when its signal aborts", async () => {
    await whileJoined(async (p) => {
      const started = performance.now();
      await assert.rejects(
        p.acquire({ signal: AbortSignal.timeout(100) }),
        (error: unknown) => error instanceof LockAbortedError,
      );
      const took = performance.now() - started;
      assert.ok(took < 3_000, `took ${took.toFixed(0)} ms`);
    });
  });

  test("acquire() shares the hold the other call gets once the lock is released", async () => {
    const key = `join-${randomHex(6)}`;
    const holder = await lock(key, { kind: "port" });
    const p = new PortLock(key, { sleepTime: 5 });
    const first = p.acquire({ timeout: 10_000 });
    const second = p.acquire({ timeout: 10_000 });
    setTimeout(() => holder.release(), 50);
    await Promise.all([first, second]);
    assert.equal(p.locked, true);
    await p.release();
  });
});
