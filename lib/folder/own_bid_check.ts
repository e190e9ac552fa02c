/**
 * Tells a folder-kind holder that its bid is gone (see `../_held_check.ts`):
 * its lock folder removed, the bid deleted by hand, or a Python lockfolder
 * peer misjudging it.
 *
 * @module
 */

import { errorCode, type Runtime } from "../runtime/mod.ts";
import { checkHeld, HELD_CHECK_MS, type HeldCheck, type HeldProbe } from "../_held_check.ts";

/** How often a holder that reads `held.signal` checks that its bid is still there, ms. */
export const OWN_BID_CHECK_MS = HELD_CHECK_MS;

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
export function checkOwnBid(runtime: Runtime, name: string, bid: string): HeldCheck {
  const probe = async (): Promise<HeldProbe> => {
    try {
      await runtime.lstat(bid);
      return "held";
    } catch (error) {
      // Only its absence proves the bid gone: EACCES (the folder's mode
      // changed) or EMFILE proves nothing, and the next check may tell.
      const code = errorCode(error);
      return code === "ENOENT" || code === "ENOTDIR" ? "gone" : "unknown";
    }
  };
  return checkHeld(
    runtime,
    name,
    probe,
    `its bid ${bid} was deleted (the lock folder removed — a logout's cleanup of ` +
      `$XDG_RUNTIME_DIR, tmpfiles cleaning /tmp, rm — or the bid itself), so another ` +
      `process may hold the lock now`,
  );
}
