/**
 * Tells a folder-kind holder that its bid is gone. Nothing in the protocol
 * takes a live holder's bid, but something outside it can: the lock folder
 * removed (a logout's cleanup of `$XDG_RUNTIME_DIR`, tmpfiles cleaning /tmp,
 * a user's `rm -rf`), the bid deleted by hand, or a Python lockfolder peer
 * misjudging it. The next contender then takes the lock (the folder is made
 * again on demand), so the holder's `held.signal` must abort.
 *
 * The check is a `lstat` of the bid every {@link OWN_BID_CHECK_MS}, on an
 * unref'd timer (a watch would be quicker, but on Deno an open watch keeps
 * the process alive). It starts only when the holder first reads
 * `held.signal`, and the first `lstat` waits a period too: acquisitions that
 * never read the signal pay nothing, and short ones that do (`lockManager`
 * hands every callback the signal; the CLI watches it) pay for a timer only.
 *
 * @module
 */

import { errorCode, type Runtime, type Timer } from "../runtime/mod.ts";
import { LockLostError } from "../errors.ts";

/** How often a holder that reads `held.signal` checks that its bid is still there, ms. */
export const OWN_BID_CHECK_MS = 1_000;

/** A running check of one held lock's bid. */
export interface OwnBidCheck {
  /** Aborted with a {@link LockLostError} once the bid is found gone. */
  readonly signal: AbortSignal;
  /** Stops checking (on release: a bid we remove is not lost). Idempotent. */
  stop(): void;
}

/**
 * Starts checking, every {@link OWN_BID_CHECK_MS}, that the bid at `bid` is still there.
 *
 * @example Check a bid while holding
 * ```ts
 * import { checkOwnBid } from "./own_bid_check.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const folder = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${folder}/mine.json`, "{}");
 * const check = checkOwnBid(runtime, "job", `${folder}/mine.json`);
 * check.signal.addEventListener("abort", () => console.log("lost"));
 * check.stop();
 * ```
 *
 * @param runtime The runtime adapter.
 * @param name The lock's name, for the error.
 * @param bid The path of the holder's bid.
 * @returns The running check.
 */
export function checkOwnBid(runtime: Runtime, name: string, bid: string): OwnBidCheck {
  const controller = new AbortController();
  let timer: Timer | null = null;
  let stopped = false;
  const schedule = () => {
    timer = runtime.setTimer(check, OWN_BID_CHECK_MS);
    timer.unref();
  };
  const check = async () => {
    timer = null;
    let gone = false;
    try {
      await runtime.lstat(bid);
    } catch (error) {
      // Only its absence proves the bid gone: EACCES (the folder's mode
      // changed) or EMFILE proves nothing, and the next check may tell.
      const code = errorCode(error);
      gone = code === "ENOENT" || code === "ENOTDIR";
    }
    if (stopped) return;
    if (!gone) return schedule();
    stopped = true;
    controller.abort(
      new LockLostError(
        name,
        `its bid ${bid} was deleted (the lock folder removed — a logout's cleanup of ` +
          `$XDG_RUNTIME_DIR, tmpfiles cleaning /tmp, rm — or the bid itself), so another ` +
          `process may hold the lock now`,
      ),
    );
  };
  schedule();
  return {
    signal: controller.signal,
    stop() {
      stopped = true;
      timer?.clear();
      timer = null;
    },
  };
}
