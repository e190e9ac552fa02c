// The throughput load: many clients, each looping acquire → release on its
// name until the window ends, timing every acquire.

import type { Locker } from "./_lockers.ts";
import type { WindowResult } from "./_measure.ts";

/**
 * Runs every client for `ms`: client `i` uses `names[i % names.length]`.
 *
 * @param clients One locker (own connection) per client.
 * @param names The names the clients share.
 * @param ms Window length; clients finish their current pair after it.
 * @param offset Index of the first client, so loads split over processes
 *   spread evenly over the names.
 * @returns Pairs done, time taken, and each acquire's latency in µs.
 */
export async function runWindow(
  clients: Locker[],
  names: string[],
  ms: number,
  offset = 0,
): Promise<WindowResult> {
  const latenciesUs: number[] = [];
  let ops = 0;
  const start = performance.now();
  const deadline = start + ms;
  await Promise.all(clients.map(async (client, i) => {
    const name = names[(i + offset) % names.length];
    while (performance.now() < deadline) {
      const t0 = performance.now();
      const held = await client.lock(name);
      latenciesUs.push((performance.now() - t0) * 1000);
      await held.release();
      ops++;
    }
  }));
  return { ops, elapsedMs: performance.now() - start, latenciesUs };
}
