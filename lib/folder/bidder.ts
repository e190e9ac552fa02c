/**
 * This isolate as a bidder: what each of its bids says besides when it was
 * made. None of it changes while the isolate lives (its pid, the process's
 * start time, the host and namespaces, the isolate's id and beacon), so it
 * is read once, not on every try.
 *
 * @module
 */

import type { Runtime } from "../runtime/mod.ts";
import type { Bid } from "./bid.ts";
import { isolateBeacon } from "./isolate_beacon.ts";
import { ISOLATE_ID } from "../_isolate.ts";

/** A bid but its time. */
export interface Bidder extends Omit<Bid, "acquiredAt"> {
  host: string;
}

const bidders = new WeakMap<Runtime, Bidder>();

/** This isolate's bidder if read already (else {@link readBidder}). */
export function knownBidder(runtime: Runtime): Bidder | undefined {
  return bidders.get(runtime);
}

/**
 * Reads this isolate's bidder and keeps it. A failed read (a beacon that
 * could not listen, a host name Deno may not read) is not kept: the next
 * try reads again.
 *
 * @param runtime The runtime adapter.
 * @returns The bidder.
 */
export async function readBidder(runtime: Runtime): Promise<Bidder> {
  const [started, beacon] = await Promise.all([
    runtime.startTime(runtime.pid),
    isolateBeacon(runtime),
  ]);
  const namespaces = runtime.namespaceId();
  const bidder: Bidder = {
    PID: runtime.pid,
    CREATED: started?.created ?? 0,
    ...(started ? { TICKS: started.ticks } : {}),
    host: runtime.hostname(),
    ...(namespaces ? { ns: namespaces } : {}),
    isolate: ISOLATE_ID,
    beacon,
  };
  bidders.set(runtime, bidder);
  return bidder;
}
