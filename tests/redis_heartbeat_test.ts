// The Redis kind's heartbeat on its own, with a renewal the test scripts:
// a hand-off's short claim lease is renewed early, retried within what is
// left of it, and reported lost when no renewal is confirmed in time.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Heartbeat, type RenewOutcome } from "../lib/redis/heartbeat.ts";
import { LockLostError } from "../lib/errors.ts";
import { type Runtime, runtime } from "../lib/runtime/mod.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function heartbeat(
  firstLease: number,
  renew: () => Promise<RenewOutcome>,
  clock: Runtime = runtime,
) {
  const calls: number[] = [];
  const start = runtime.monotonic();
  const beat = new Heartbeat({
    runtime: clock,
    name: "hb",
    ttl: 30_000,
    lease: 20_000,
    sentAt: start,
    firstLease,
    renew: () => {
      calls.push(runtime.monotonic() - start);
      return renew();
    },
    onLost: () => {},
  });
  return { beat, calls };
}

describe("Redis heartbeat", () => {
  test("a hand-off's claim lease is renewed at half of it, and the lock then outlives it", async () => {
    const { beat, calls } = heartbeat(400, () => Promise.resolve("renewed"));
    try {
      await sleep(700);
      assert.equal(calls.length, 1, "one renewal");
      assert.ok(calls[0] >= 190 && calls[0] < 550, `renewed at ${calls[0]} ms`);
      assert.equal(beat.signal.aborted, false, "held past the claim lease");
      assert.ok(
        beat.deadline > runtime.monotonic() + 15_000,
        "the full lease counts from the renewal",
      );
    } finally {
      beat.stop();
    }
  });

  test("a failing renewal is retried within what is left of the claim lease", async () => {
    let failures = 2;
    const { beat, calls } = heartbeat(
      900,
      () =>
        failures-- > 0 ? Promise.reject(new Error("connection reset")) : Promise.resolve("renewed"),
    );
    try {
      await sleep(1_700);
      assert.equal(calls.length, 3, `renewals at ${calls.map(Math.round).join(", ")} ms`);
      assert.equal(beat.signal.aborted, false, "the third renewal came in time");
    } finally {
      beat.stop();
    }
  });

  test("no renewal confirmed before the claim lease ends: the signal aborts with LockLostError", async () => {
    const { beat } = heartbeat(300, () => new Promise(() => {})); // never answers
    await sleep(400);
    assert.equal(beat.signal.aborted, true);
    assert.ok(beat.signal.reason instanceof LockLostError);
    assert.match(beat.signal.reason.message, /lease ran out/);
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
      new Promise((resolve) => timer = setTimeout(() => resolve("no abort event"), 1_500)),
    ]).finally(() => clearTimeout(timer));
    assert.ok(reason instanceof LockLostError, String(reason));
  });
});
