// The wait loop bounds each try by the caller's timeout and signal: a kind
// whose backend stopped answering (a stalled server, a Redis behind a dead
// link) must not hold lock() past either. Driven by stand-in targets whose
// tries hang or settle late.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { acquire } from "../lib/_acquire.ts";
import type { Attempt, Grant, LockTarget } from "../lib/_kind.ts";
import { type Runtime, runtime, type Timer } from "../lib/runtime/mod.ts";
import { LockAbortedError, LockError, LockTimeoutError } from "../mod.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A target whose tries are answered by `tries` in turn (the last one repeats). */
function scriptedTarget(tries: Array<() => Promise<Attempt>>): LockTarget & { count: number } {
  const target = {
    key: `bounds-${crypto.randomUUID()}`,
    count: 0,
    tryAcquire: () => tries[Math.min(target.count++, tries.length - 1)](),
    inspect: () => Promise.resolve(null),
  };
  return target;
}

function grant(onRelease: () => void): Grant {
  return {
    token: 1,
    info: { kind: "server", name: "x", pid: 1, host: "h", acquiredAt: 0 },
    release: () => {
      onRelease();
      return Promise.resolve();
    },
  };
}

const never = () => new Promise<Attempt>(() => {});
const busy = () => Promise.resolve<Attempt>({ acquired: false, holder: null });

function request(target: LockTarget, more: { timeout?: number; signal?: AbortSignal }) {
  return { name: "bounds", kind: "server" as const, target, runtime, wait: true, ...more };
}

/** The runtime, recording which of its timers are still pending. */
function timerRecorder(): { runtime: Runtime; pending: (minMs: number) => number[] } {
  const timers: { ms: number; pending: boolean }[] = [];
  return {
    runtime: {
      ...runtime,
      setTimer(fn: () => void, ms: number): Timer {
        const record = { ms, pending: true };
        timers.push(record);
        const timer = runtime.setTimer(() => {
          record.pending = false;
          fn();
        }, ms);
        return {
          clear: () => {
            record.pending = false;
            timer.clear();
          },
          unref: () => timer.unref(),
        };
      },
    },
    pending: (minMs) => timers.filter((t) => t.pending && t.ms >= minMs).map((t) => t.ms),
  };
}

/** An AbortSignal that tells how many listeners are registered on it. */
function countedSignal(): { controller: AbortController; listeners: () => number } {
  const controller = new AbortController();
  const signal = controller.signal;
  const registered = new Set<unknown>();
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = (...args: Parameters<typeof add>) => {
    registered.add(args[1]);
    add(...args);
  };
  signal.removeEventListener = (...args: Parameters<typeof remove>) => {
    registered.delete(args[1]);
    remove(...args);
  };
  return { controller, listeners: () => registered.size };
}

describe("the wait loop bounds a try that does not come back", () => {
  test("a try that never settles ends at the timeout with LockTimeoutError", async () => {
    const started = performance.now();
    const error = await acquire(request(scriptedTarget([never]), { timeout: 200 })).catch((e) => e);
    const took = performance.now() - started;
    assert.ok(error instanceof LockTimeoutError, String(error));
    // No try came back: nobody is named as the holder.
    assert.match(error.message, /whose holder could not be identified/);
    assert.ok(took >= 190 && took < 1_500, `took ${took} ms`);
  });

  test("a try that never settles ends at the abort with LockAbortedError", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const started = performance.now();
    const error = await acquire(
      request(scriptedTarget([never]), { signal: controller.signal }),
    ).catch((e) => e);
    assert.ok(error instanceof LockAbortedError, String(error));
    assert.ok(performance.now() - started < 1_000);
  });

  test("a grant that comes after the caller gave up is released, not leaked", async () => {
    let released = 0;
    let grantLate!: () => void;
    const late = new Promise<Attempt>((resolve) => {
      grantLate = () => resolve({ acquired: true, grant: grant(() => released++) });
    });
    const error = await acquire(request(scriptedTarget([() => late]), { timeout: 100 })).catch((
      e,
    ) => e);
    assert.ok(error instanceof LockTimeoutError, String(error));
    grantLate();
    await sleep(20);
    assert.equal(released, 1);
  });

  test("a waiting attempt that comes after the caller gave up has its wake cancelled", async () => {
    let cancelled = 0;
    let answerLate!: () => void;
    const late = new Promise<Attempt>((resolve) => {
      answerLate = () =>
        resolve({
          acquired: false,
          holder: null,
          wake: new Promise<void>(() => {}),
          cancelWake: () => cancelled++,
        });
    });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 30);
    const error = await acquire(
      request(scriptedTarget([() => late]), { signal: controller.signal }),
    ).catch((e) => e);
    assert.ok(error instanceof LockAbortedError, String(error));
    answerLate();
    await sleep(20);
    assert.equal(cancelled, 1);
  });

  test("the last try, made at the deadline, is bounded too", async () => {
    // Busy until the deadline; the try made then hangs.
    const target = scriptedTarget([busy, never]);
    const started = performance.now();
    const error = await acquire({
      ...request(target, { timeout: 50 }),
      retry: { minDelay: 1_000, maxDelay: 1_000 },
    }).catch((e) => e);
    const took = performance.now() - started;
    assert.ok(error instanceof LockTimeoutError, String(error));
    assert.equal(target.count, 2, "one try, then the last one at the deadline");
    assert.ok(took >= 45 && took < 1_500, `took ${took} ms`);
  });

  test("a slow try is not cut short when nothing bounds the wait: no timeout, or timeout 0", async () => {
    for (const timeout of [undefined, 0]) {
      let released = 0;
      const slow = () =>
        sleep(150).then((): Attempt => ({ acquired: true, grant: grant(() => released++) }));
      const result = await acquire(request(scriptedTarget([slow]), { timeout }));
      assert.ok(result.held, `timeout ${timeout}: held`);
      await result.held.release();
      assert.equal(released, 1);
    }
  });

  test("tries that come back in time leave no deadline timer and no abort listener behind", async () => {
    const recorder = timerRecorder();
    const { controller, listeners } = countedSignal();
    let released = 0;
    const waiting = () =>
      sleep(5).then((): Attempt => ({
        acquired: false,
        holder: null,
        wake: sleep(5).then(() => {}),
      }));
    const grants = () =>
      sleep(5).then((): Attempt => ({ acquired: true, grant: grant(() => released++) }));
    const result = await acquire({
      ...request(scriptedTarget([waiting, grants]), {
        timeout: 120_000,
        signal: controller.signal,
      }),
      runtime: recorder.runtime,
    });
    assert.ok(result.held);
    assert.deepEqual(recorder.pending(100_000), [], "a deadline timer outlived its try");
    assert.equal(listeners(), 0, "an abort listener outlived its try");
    await result.held.release();
    assert.equal(released, 1);
  });

  test("the next waiter in this process does not try before a try its predecessor gave up on is undone", async () => {
    // One target shared by both waiters, as the Redis kind shares its owner
    // id between the tries of one target: B trying while A's late grant is
    // still to come would let A's release remove B's lock.
    const events: string[] = [];
    let grantLate!: () => void;
    const lateForA = new Promise<Attempt>((resolve) => {
      grantLate = () =>
        resolve({ acquired: true, grant: grant(() => events.push("A's late grant released")) });
    });
    const target = scriptedTarget([
      () => lateForA,
      () => {
        events.push("B tries");
        return Promise.resolve({ acquired: true, grant: grant(() => events.push("B released")) });
      },
    ]);
    const controller = new AbortController();
    const a = acquire(request(target, { signal: controller.signal }));
    await sleep(10);
    const b = acquire(request(target, { timeout: 5_000 }));
    controller.abort();
    await assert.rejects(a, LockAbortedError);
    await sleep(50);
    assert.deepEqual(events, [], "B waits while A's try is out");
    grantLate();
    const held = await b;
    assert.deepEqual(events, ["A's late grant released", "B tries"]);
    await held.held!.release();
  });

  test("an abort that lands as the in-process slot is handed over ends the wait before any try", async () => {
    const target = scriptedTarget([
      () => Promise.resolve<Attempt>({ acquired: true, grant: grant(() => {}) }),
    ]);
    const first = await acquire(request(target, {}));
    const controller = new AbortController();
    const waiting = acquire(request(target, { signal: controller.signal }));
    await sleep(10);
    // Released and aborted in the same turn: the waiter gets the slot, and
    // must see the abort before it tries.
    await first.held!.release();
    controller.abort();
    await assert.rejects(waiting, LockAbortedError);
    assert.equal(target.count, 1, "no try after the abort");
  });

  test("a signal that is not an AbortSignal is refused before any try", async () => {
    const target = scriptedTarget([never]);
    for (const signal of [{}, "stop", { aborted: false }]) {
      await assert.rejects(
        acquire(request(target, { signal: signal as unknown as AbortSignal, timeout: 100 })),
        (error) =>
          error instanceof LockError && /signal must be an AbortSignal/.test(error.message),
      );
    }
    assert.equal(target.count, 0);
  });
});
