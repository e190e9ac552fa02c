// A failed try whose wake-up is made only if the caller waits (a tryLock()
// never does, so it pays no connect, watch or timer).
//
// The getter sits on one shared prototype rather than in each attempt's
// object literal: a getter written in a literal is a new accessor per
// object, and V8 then gives every such object a hidden class of its own,
// made in the old generation. That cost a few microseconds per try and left
// a major collection to clean up (Node 24: 200,000 literals with a getter
// took 720 ms and 28 MB of old space; with the getter on a prototype, 60 ms
// and 0.3 MB).

import type { Attempt } from "./_kind.ts";
import type { LockInfo } from "./types.ts";

const MAKE_WAKE = Symbol("makeWake");
const WAKE = Symbol("wake");

interface LazyWakeFields {
  [MAKE_WAKE]: () => Promise<void>;
  [WAKE]: Promise<void> | undefined;
}

const lazyWake = {
  get wake(): Promise<void> {
    const fields = this as unknown as LazyWakeFields;
    return fields[WAKE] ??= fields[MAKE_WAKE]();
  },
};

/**
 * A failed attempt whose `wake` is made by `makeWake` on first read.
 *
 * @param holder The holder, if known.
 * @param makeWake Opens what tells of a release; called at most once.
 * @param cancelWake Drops it again (safe to call if it was never made).
 * @returns The attempt.
 */
export function lazyWakeAttempt(
  holder: LockInfo | null,
  makeWake: () => Promise<void>,
  cancelWake: () => void,
): Attempt {
  return {
    __proto__: lazyWake,
    acquired: false,
    holder,
    [MAKE_WAKE]: makeWake,
    [WAKE]: undefined,
    cancelWake,
  } as unknown as Attempt;
}
