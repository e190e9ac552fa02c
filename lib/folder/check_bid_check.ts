/**
 * lockfolder's procedure: CHECK → BID → CHECK → (DELETE & FAIL | OPERATE).
 *
 * Why it is safe: say A and B both hold. A's second CHECK did not see B's
 * bid, so B's bid appeared after A's CHECK began — after A's own bid was
 * complete. Then B's second CHECK, which follows B's bid, saw A's complete
 * bid, found A alive, and failed: a contradiction. Bids are renamed into
 * place whole, and a bid is deleted only when its writer is provably gone,
 * so a live holder's bid is never missed or removed.
 *
 * The argument rests on the second CHECK alone. The first only spares a bid
 * (and a withdrawal) when the lock is plainly held, so a caller that expects
 * the lock free — it released it last — may go straight to the bid.
 *
 * @module
 */

import type { Runtime } from "../runtime/mod.ts";
import { type FoundBid, readBids, removeBid, writeBid } from "./bid.ts";
import { challengeBid } from "./challenge_bid.ts";

/** The outcome of one check-bid-check round. */
export type CheckBidCheckResult =
  | { acquired: true; id: string; path: string }
  | { acquired: false; holder: FoundBid };

/**
 * Finds a live bid other than `skipId`, deleting the stale ones it meets.
 * Unreadable bids (maybe mid-write by Python's lockfolder) are passed over:
 * their writer's own second CHECK will see our bid.
 */
export async function findLiveBid(
  runtime: Runtime,
  folder: string,
  skipId: string | null,
): Promise<FoundBid | null> {
  const host = runtime.hostname();
  for (const found of await readBids(runtime, folder, skipId)) {
    const standing = await challengeBid(runtime, found, host);
    if (standing === "live") return found;
    if (standing === "stale") await removeBid(runtime, found.path);
  }
  return null;
}

/**
 * Runs one round of check-bid-check in `folder` with the bid `bid`;
 * with `checkFirst` false, bid-check (see the module's note).
 *
 * @example One round in a fresh folder
 * ```ts
 * import { checkBidCheck } from "./check_bid_check.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const folder = await Deno.makeTempDir();
 * const start = await runtime.startTime(runtime.pid);
 * const result = await checkBidCheck(
 *   runtime,
 *   folder,
 *   JSON.stringify({ PID: runtime.pid, CREATED: start?.created ?? 0 }),
 * );
 * console.log(result.acquired); // true
 * ```
 *
 * @param runtime The runtime adapter.
 * @param folder The lock folder (must exist).
 * @param bid This process's bid, as its file's text (a `Bid` of ./bid.ts, in JSON).
 * @param checkFirst false to skip the first CHECK.
 * @returns The acquired bid's id and path, or the live bid that won.
 */
export async function checkBidCheck(
  runtime: Runtime,
  folder: string,
  bid: string,
  checkFirst = true,
): Promise<CheckBidCheckResult> {
  if (checkFirst) {
    const before = await findLiveBid(runtime, folder, null);
    if (before) return { acquired: false, holder: before };
  }
  const id = crypto.randomUUID();
  const path = await writeBid(runtime, folder, id, bid);
  let after: FoundBid | null;
  try {
    after = await findLiveBid(runtime, folder, id);
  } catch (error) {
    await removeBid(runtime, path);
    throw error;
  }
  if (after) {
    await removeBid(runtime, path);
    return { acquired: false, holder: after };
  }
  return { acquired: true, id, path };
}
