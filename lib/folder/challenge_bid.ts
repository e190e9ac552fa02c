/**
 * The challenge: is the process that wrote a bid still the one running
 * under its pid? Only a bid that fails this is ever deleted.
 *
 * @module
 */

import { errorCode, type Runtime } from "../runtime/mod.ts";
import type { FoundBid } from "./bid.ts";
import { isBeaconAlive } from "./isolate_beacon.ts";
import { foreignNamespaces } from "../_namespaces.ts";

/**
 * How long an unreadable `.json` file is given before it may be treated as
 * garbage: Python's lockfolder writes bids in place, so a reader can see an
 * empty file for the moment it takes to write one. Past this, it is garbage
 * only if no process has it open: a writer stalled mid-write (stopped,
 * swapped out, its clock stepped) would otherwise write its bid into an
 * unlinked file and hold unseen.
 */
export const GARBAGE_GRACE_MS = 5_000;

/** A bid's standing after a challenge. */
export type BidStanding = "live" | "stale" | "unreadable";

/**
 * Challenges one bid: `"live"` if its writer still runs (same pid, same start
 * time, its isolate's beacon still listening; or a bid from another host or
 * other namespaces, whose processes and beacons we cannot see), `"stale"` if
 * the writer is gone, its pid was reused, or the worker that wrote it was
 * terminated, `"unreadable"` if the file is not a bid but may be one being
 * written.
 */
export async function challengeBid(
  runtime: Runtime,
  found: FoundBid,
  localHost: string,
): Promise<BidStanding> {
  const { bid } = found;
  if (!bid) return await isOldGarbage(runtime, found.path) ? "stale" : "unreadable";
  if (bid.host !== undefined && bid.host !== localHost) return "live";
  // A container sharing the folder and the host name: its pids are not ours
  // to check if its pid namespace differs, nor its beacon (an abstract
  // socket) if its network namespace does. What is left still decides.
  const foreign = foreignNamespaces(bid.ns, runtime.namespaceId());
  if (foreign.pid) {
    if (foreign.net || bid.beacon === undefined) return "live";
    return await isBeaconAlive(runtime, bid.beacon) ? "live" : "stale";
  }
  if (!runtime.isAlive(bid.PID)) return "stale";
  const started = await runtime.startTime(bid.PID);
  // null: gone since isAlive (stale), or a platform without start times, where
  // a live pid is all we can go by. Ticks where the bid has them: CREATED
  // moves with the wall clock (psutil's boot time does), ticks do not. A bid
  // with neither (CREATED 0) was written by a process that could not read its
  // own start time (a /proc without btime): nothing to compare; the pid and
  // the beacon decide. So do they for a bidder in another time namespace:
  // we read its ticks shifted by our boot-time offset, never equal to its own.
  const unknownStart = (bid.TICKS === undefined && bid.CREATED === 0) || foreign.time;
  if (started === null) {
    if (!runtime.isAlive(bid.PID)) return "stale";
  } else if (
    !unknownStart &&
    (bid.TICKS !== undefined ? started.ticks !== bid.TICKS : started.created !== bid.CREATED)
  ) {
    return "stale";
  }
  // The process lives; the isolate (a worker) that bid may not.
  if (bid.beacon !== undefined && !foreign.net && !(await isBeaconAlive(runtime, bid.beacon))) {
    return "stale";
  }
  return "live";
}

async function isOldGarbage(runtime: Runtime, path: string): Promise<boolean> {
  try {
    const stat = await runtime.lstat(path);
    if (runtime.now() - stat.mtimeMs <= GARBAGE_GRACE_MS) return false;
    // Where nobody can tell whether it is open (no /proc), it stays.
    return (await runtime.fileInUse(path)) === false;
  } catch (error) {
    if (errorCode(error) === "ENOENT") return false;
    throw error;
  }
}
