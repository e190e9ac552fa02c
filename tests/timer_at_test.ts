// timerAt: a deadline timer that never fires before its moment on the
// monotonic clock, even over a runtime whose timers fire early.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { timerAt } from "../lib/_timer_at.ts";
import { type Runtime, runtime } from "../lib/runtime/mod.ts";

// Every timer of this runtime fires 20 ms before its time.
const early: Runtime = {
  ...runtime,
  setTimer: (fn, ms) => runtime.setTimer(fn, Math.max(0, ms - 20)),
};

describe("timerAt", () => {
  test("fires at its moment, not before, even when the runtime's timers fire early", async () => {
    const due = runtime.monotonic() + 50;
    const firedAt = await new Promise<number>((resolve) =>
      timerAt(early, () => due, () => resolve(runtime.monotonic()))
    );
    assert.ok(firedAt >= due, `fired ${(due - firedAt).toFixed(1)} ms early`);
  });

  test("reads its moment again when it arms, so a deadline moved later is kept", async () => {
    let due = runtime.monotonic() + 30;
    const started = runtime.monotonic();
    const fired = new Promise<number>((resolve) =>
      timerAt(early, () => due, () => resolve(runtime.monotonic()))
    );
    due += 60;
    assert.ok((await fired) - started >= 90);
  });

  test("clear() stops it, re-armings included", async () => {
    // Timers 250 ms early: from 50 ms on it keeps arming again until 300 ms.
    const veryEarly: Runtime = {
      ...runtime,
      setTimer: (fn, ms) => runtime.setTimer(fn, Math.max(0, ms - 250)),
    };
    let fired = false;
    const due = runtime.monotonic() + 300;
    const timer = timerAt(veryEarly, () => due, () => fired = true);
    await new Promise((resolve) => setTimeout(resolve, 150));
    timer.clear();
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(fired, false);
  });
});
