// A started child as the adapters hand it out: its kill() does nothing once
// it has ended, and a runtime's error for one that ended meanwhile is
// swallowed (there is nothing left to signal).

import type { ChildProcess } from "./types.ts";

/**
 * Wraps a runtime's child process.
 *
 * @param pid The child's pid.
 * @param exited Resolves when it ends (see {@link ChildProcess.exited}).
 * @param kill Sends it a signal by name.
 * @returns The child, for the Runtime interface.
 */
export function guardedChild(
  pid: number,
  exited: ChildProcess["exited"],
  kill: (signal: string) => void,
): ChildProcess {
  let done = false;
  // Attached first, so it runs before anyone who awaits `exited`.
  exited.then(() => done = true, () => {});
  return {
    pid,
    exited,
    kill(signal) {
      if (done) return;
      try {
        kill(signal);
      } catch {
        // ended between the check and the kill
      }
    },
  };
}
