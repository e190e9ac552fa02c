// Throughput of a remote kind: many clients (each with its own connection)
// looping acquire → release over a few names, run in two load processes of
// this runtime so the server or Redis arbitrates between processes, not only
// the library's in-process queue.

import type { BenchContext } from "./_case.ts";
import { type ChildLink, startChild } from "./_children.ts";
import type { LockerKind } from "./_lockers.ts";
import { measureWindows, type WindowResult } from "./_measure.ts";

/** The row label of the contended load with one Redis client per load process. */
export const SHARED_CLIENT_OPERATION =
  "throughput, 100 clients × 10 names, one ioredis client per process";

/** Load processes the clients are spread over. */
export const LOAD_PROCESSES = 2;

let started: Promise<ChildLink[]> | null = null;

/** The load processes, started once per run and stopped at its end. */
function loadProcesses(ctx: BenchContext): Promise<ChildLink[]> {
  started ??= (async () => {
    const loads: ChildLink[] = [];
    ctx.defer(() => Promise.all(loads.map((load) => load.close())));
    for (let p = 0; p < LOAD_PROCESSES; p++) loads.push(await startChild("load"));
    return loads;
  })();
  return started;
}

/**
 * Measures pairs/s and acquire latency for `clients` clients over `names` names.
 *
 * @param ctx The benchmark context (its setup names the server / Redis).
 * @param kind The remote kind (or peer).
 * @param clients Clients in all.
 * @param nameCount Distinct names; client i uses name i mod nameCount.
 * @param id Result id.
 * @param operation Row label.
 * @param rowKind The kind column of the row (default: `kind`).
 */
export async function measureThroughput(
  ctx: BenchContext,
  kind: LockerKind,
  clients: number,
  nameCount: number,
  id: string,
  operation: string,
  rowKind: string = kind,
): Promise<void> {
  const names = Array.from(
    { length: nameCount },
    (_, i) => ctx.unique(`${kind.replace(":", "-")}-load${i}`),
  );
  const loads = await loadProcesses(ctx);
  try {
    for (const [p, load] of loads.entries()) {
      await load.ask(`setup ${JSON.stringify(ctx.setup)}`);
      const share = Math.floor(clients / LOAD_PROCESSES) +
        (p < clients % LOAD_PROCESSES ? 1 : 0);
      const offset = p * Math.floor(clients / LOAD_PROCESSES) +
        Math.min(p, clients % LOAD_PROCESSES);
      await load.ask(`clients ${kind} ${share} ${offset} ${names.join(",")}`);
    }
    const window = async (ms: number): Promise<WindowResult> => {
      const parts = await Promise.all(
        loads.map(async (load) => JSON.parse(await load.ask(`window ${ms}`)) as WindowResult),
      );
      return {
        ops: parts.reduce((sum, part) => sum + part.ops, 0),
        elapsedMs: Math.max(...parts.map((part) => part.elapsedMs)),
        latenciesUs: parts.flatMap((part) => part.latenciesUs),
      };
    };
    const measured = await measureWindows(window, ctx.budget);
    ctx.record(
      id,
      rowKind,
      operation,
      measured,
      `ops/s = acquire+release pairs/s; p50/p99 = acquire latency; ${LOAD_PROCESSES} load processes`,
    );
  } finally {
    // Close this load's clients (and their connections) before the next.
    for (const load of loads) await load.ask("clients none 0 0 -").catch(() => {});
  }
}
