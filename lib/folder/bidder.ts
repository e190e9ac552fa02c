/**
 * This isolate as a bidder: what each of its bids says besides when it was
 * made. None of it changes while the isolate lives (its pid, the process's
 * start time, the host and namespaces, the isolate's id and beacon), so it
 * is read and serialized once, not on every try.
 *
 * @module
 */

import type { Runtime } from "../runtime/mod.ts";
import type { Bid } from "./bid.ts";
import { isolateBeacon } from "./isolate_beacon.ts";
import { ISOLATE_ID } from "../_isolate.ts";

/** This isolate as a bidder. */
export interface Bidder {
  /** The host its bids name. */
  host: string;
  /** What each of its bids says but when it was made: a {@link Bid}'s JSON less its end. */
  head: string;
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
  const host = runtime.hostname();
  const namespaces = runtime.namespaceId();
  const fields: Omit<Bid, "acquiredAt"> = {
    PID: runtime.pid,
    CREATED: started?.created ?? 0,
    ...(started ? { TICKS: started.ticks } : {}),
    host,
    ...(namespaces ? { ns: namespaces } : {}),
    isolate: ISOLATE_ID,
    beacon,
  };
  const bidder = { host, head: JSON.stringify(fields).slice(0, -1) };
  bidders.set(runtime, bidder);
  return bidder;
}

/**
 * The text of a bid of `bidder`'s made at `acquiredAt` (epoch ms): its
 * fields' JSON, serialized once, and the time.
 *
 * @example This isolate's bid, made now
 * ```ts
 * import { bidText, knownBidder, readBidder } from "./bidder.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const bidder = knownBidder(runtime) ?? await readBidder(runtime);
 * console.log(JSON.parse(bidText(bidder, Date.now())).PID === runtime.pid); // true
 * ```
 *
 * @param bidder The bidder.
 * @param acquiredAt When the bid is made.
 * @returns The bid file's text.
 */
export function bidText(bidder: Bidder, acquiredAt: number): string {
  return `${bidder.head},"acquiredAt":${JSON.stringify(acquiredAt)}}`;
}
