// Each kind's torture plan: options, names and fault schedule, shared by the
// CI-sized run (mutual_exclusion_torture.ts) and the long run (main.ts).

import type { TortureRun } from "./_fleet.ts";

/** Lease of the lease kinds in a torture run, in ms. */
export const TORTURE_TTL = 2_000;

/** How a run is sized. */
export interface PlanSize {
  sections: number;
  /** Seconds before the run gives up. */
  timeLimitMs: number;
}

/**
 * The torture plan for `kind`. Local kinds get SIGSTOPs longer than the
 * socket kind's handshake timeout (a silent holder must keep its lock); lease
 * kinds get SIGSTOPs well past their lease (the holder must lose it, loudly,
 * and its late write must be refused) and restarts of their service.
 */
export function planFor(
  kind: "socket" | "folder" | "port" | "server" | "redis",
  size: PlanSize,
  context: { dir: string; runId: string; serverPort?: number; redisPort?: number },
): Omit<TortureRun, "service"> {
  const names = [0, 1].map((i) => `torture-${context.runId}-${i}`);
  const long = size.sections > 10_000;
  const base = {
    kind,
    names,
    sections: size.sections,
    timeLimitMs: size.timeLimitMs,
    workersPerRuntime: 2,
    loops: 2,
    killEveryMs: long ? 2_000 : 400,
    workMs: 2,
    stops: long ? Math.ceil(size.sections / 5_000) : 2,
  };
  switch (kind) {
    case "socket":
    case "folder":
      return { ...base, options: { dir: context.dir }, stopMs: 1_500, leaseFloorMs: null };
    case "port":
      return { ...base, options: {}, stopMs: 1_500, leaseFloorMs: null };
    case "server":
      return {
        ...base,
        options: { server: `127.0.0.1:${context.serverPort}`, ttl: TORTURE_TTL },
        stopMs: TORTURE_TTL * 1.75,
        leaseFloorMs: TORTURE_TTL / 2,
        restarts: base.stops,
      };
    case "redis":
      // A waiter killed while queued can be handed the lock, which then
      // idles for its claim time — min(ttl, 2 s), so here the whole ttl, as
      // a killed holder's does: a shorter lease and fewer kills keep the CI
      // run short.
      return {
        ...base,
        options: { ttl: TORTURE_TTL / 2 },
        redisPort: context.redisPort,
        killEveryMs: base.killEveryMs * 2.5,
        stopMs: TORTURE_TTL * 0.875,
        leaseFloorMs: TORTURE_TTL / 4,
        restarts: base.stops,
      };
  }
}
