// A call that waits on a server, Redis or another call raced against its own
// deadline and abort signal: one that stopped answering must not hold the
// caller past its timeout, nor past an abort.

import type { Runtime } from "./runtime/mod.ts";
import { timerAt } from "./_timer_at.ts";

/** What {@link raceUntil} gives when the deadline comes or the signal aborts first. */
export const GAVE_UP: unique symbol = Symbol("gave up");

/**
 * `promise`'s outcome, or {@link GAVE_UP} if `due` (monotonic ms; `Infinity`:
 * none) comes or `signal` aborts first. A rejection is passed on.
 *
 * @example Give up on a call that never answers
 * ```ts
 * import { GAVE_UP, raceUntil } from "./_race_until.ts";
 * import { runtime } from "./runtime/mod.ts";
 * const never = new Promise<string>(() => {});
 * const outcome = await raceUntil(runtime, never, runtime.monotonic() + 20, undefined);
 * console.log(outcome === GAVE_UP); // true
 * ```
 *
 * @param runtime The runtime adapter.
 * @param promise What is waited for.
 * @param due The deadline, monotonic ms.
 * @param signal Ends the wait when it aborts.
 * @returns The outcome, or GAVE_UP.
 */
export function raceUntil<T>(
  runtime: Runtime,
  promise: Promise<T>,
  due: number,
  signal: AbortSignal | undefined,
): Promise<T | typeof GAVE_UP> {
  if (due === Infinity && !signal) return promise;
  return new Promise((resolve, reject) => {
    const timer = due === Infinity ? undefined : timerAt(runtime, () => due, () => settle(GAVE_UP));
    signal?.addEventListener("abort", onAbort, { once: true });
    // Aborted during the call that started the wait: no event will come.
    if (signal?.aborted) queueMicrotask(onAbort);
    function onAbort() {
      settle(GAVE_UP);
    }
    function cleanUp() {
      timer?.clear();
      signal?.removeEventListener("abort", onAbort);
    }
    function settle(outcome: T | typeof GAVE_UP) {
      cleanUp();
      resolve(outcome);
    }
    promise.then(settle, (error) => {
      cleanUp();
      reject(error);
    });
  });
}
