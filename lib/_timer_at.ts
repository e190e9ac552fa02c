// A timer for a moment on the monotonic clock rather than for a delay.
// Runtimes' timers may fire early by that clock (Node's by a millisecond or
// more under load), and any delay past ~24.8 days is capped (see
// runtime/_timer_delay.ts): the deadline timers of leases and waits must
// not act before their moment, so this one arms again until it has come.

import type { Runtime, Timer } from "./runtime/mod.ts";

/**
 * Calls `fire` once `runtime.monotonic()` has reached `due()`, which is read
 * again at each arming, so a deadline moved while the timer is pending is
 * the one kept.
 *
 * @example Abort a wait at a deadline 50 ms away
 * ```ts
 * import { timerAt } from "./_timer_at.ts";
 * import { runtime } from "./runtime/mod.ts";
 * const deadline = runtime.monotonic() + 50;
 * await new Promise<void>((resolve) => timerAt(runtime, () => deadline, resolve));
 * console.log(runtime.monotonic() >= deadline); // true
 * ```
 *
 * @param runtime The runtime adapter.
 * @param due The moment, monotonic ms.
 * @param fire Called once, at or after it.
 * @returns The timer; `unref()` holds for its re-armings too.
 */
export function timerAt(runtime: Runtime, due: () => number, fire: () => void): Timer {
  let timer: Timer;
  let unref = false;
  const arm = () => {
    timer = runtime.setTimer(
      () => runtime.monotonic() < due() ? arm() : fire(),
      due() - runtime.monotonic(),
    );
    if (unref) timer.unref();
  };
  arm();
  return {
    clear: () => timer.clear(),
    unref: () => {
      unref = true;
      timer.unref();
    },
  };
}
