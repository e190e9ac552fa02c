// The releaser's side of a run of quick acquisitions (see PATIENCE_MS in
// scripts.ts): a release that leaves the lock free for a run is a bet that
// this process takes it again at once, as a busy loop does. If it has not
// tried again by the next turn of its event loop, the bet is off and the
// lock goes to the first waiter now, not when the waiter's own timer ends
// the run. Measured with two processes taking turns (hold 0-3 ms, then other
// work for 1-5 ms): the waiters' p90 wait fell from 6-10 ms to 1-2.5 ms.

import { setImmediate } from "node:timers";

/** What one target tells its run grace. */
export interface RunGrace {
  /** An attempt on the lock is starting (the process came back). */
  tried(): void;
  /** A release left the lock free for the run `run` while waiters were queued. */
  leftFree(run: string): void;
}

/**
 * Tracks one target's releases and tries, and calls `passOn` when a
 * release left the lock free for a run and no try followed before the
 * event loop's next turn (a macrotask: a loop that awaits `release()` and
 * then calls `lock()` again does so in promise callbacks, before it).
 *
 * @param passOn Ends the run `run`, handing the lock to the first waiter
 *   (errors are its own).
 */
export function runGrace(passOn: (run: string) => void): RunGrace {
  let tries = 0;
  let triesAtRelease = -1;
  let lastRun = "";
  let pending = false;

  function check(): void {
    pending = false;
    if (tries !== triesAtRelease) return; // came back: the run goes on
    triesAtRelease = -1;
    passOn(lastRun);
  }

  return {
    tried() {
      tries++;
    },
    leftFree(run) {
      triesAtRelease = tries;
      lastRun = run;
      if (pending) return;
      pending = true;
      // Not unref'd: it holds a process for one turn at most, and Deno runs
      // an unref'd immediate only when something else wakes its queue.
      setImmediate(check);
    },
  };
}
