/**
 * Isolate beacons: a liveness proof that dies with the worker (or main
 * thread) that holds a bid. A terminated worker's pid lives on in its
 * process, so pid + start time cannot tell it is gone; its sockets, though,
 * are closed with it.
 *
 * Each isolate listens once, for its whole life, on a name nobody else uses
 * (a Linux abstract socket named after a random id; a loopback TCP port
 * elsewhere) and writes that name into its bids. The listener is never
 * closed while the isolate lives, so "connection refused" proves the isolate
 * is gone. Anything else (accepted, timed out) counts as alive: a beacon can
 * only make a bid look live for longer, never make a live bid look dead.
 *
 * @module
 */

import { errorCode, type Runtime, type SocketAddress } from "../runtime/mod.ts";

const beacons = new WeakMap<Runtime, Promise<string>>();

/** How long a challenger waits for a beacon before counting it alive, in ms. */
const BEACON_TIMEOUT_MS = 1_000;

function beaconAddress(beacon: string): SocketAddress | null {
  if (beacon.startsWith("abstract:")) {
    return { transport: "unix", path: `\0socketlock/beacon/${beacon.slice(9)}` };
  }
  if (beacon.startsWith("tcp:")) {
    const port = Number(beacon.slice(4));
    if (Number.isInteger(port) && port > 0 && port < 65536) {
      return { transport: "tcp", hostname: "127.0.0.1", port };
    }
  }
  return null;
}

/**
 * Starts this isolate's beacon on first use and returns its name for bids
 * (`abstract:<id>` or `tcp:<port>`). The listener is unref'd: it never keeps
 * the process alive.
 */
export function isolateBeacon(runtime: Runtime): Promise<string> {
  let beacon = beacons.get(runtime);
  if (!beacon) {
    beacon = startBeacon(runtime);
    beacon.catch(() => beacons.delete(runtime));
    beacons.set(runtime, beacon);
  }
  return beacon;
}

async function startBeacon(runtime: Runtime): Promise<string> {
  const abstract = runtime.platform === "linux";
  const name = abstract ? `abstract:${crypto.randomUUID()}` : "tcp:0";
  const listener = await runtime.listen(
    abstract ? beaconAddress(name)! : { transport: "tcp", hostname: "127.0.0.1", port: 0 },
    (conn) => conn.close(),
  );
  listener.unref();
  return abstract ? name : `tcp:${listener.port}`;
}

/**
 * True unless the beacon provably is gone (its address refuses connections).
 * An unparsable beacon name counts as alive: it proves nothing.
 */
export async function isBeaconAlive(runtime: Runtime, beacon: string): Promise<boolean> {
  const address = beaconAddress(beacon);
  if (!address) return true;
  try {
    const conn = await runtime.connect(address, BEACON_TIMEOUT_MS);
    conn.close();
    return true;
  } catch (error) {
    const code = errorCode(error);
    return !(code === "ECONNREFUSED" || code === "ENOENT");
  }
}
