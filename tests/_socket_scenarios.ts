// The socket kind's forced interleavings share this: scenario tests in a
// scripted world whose paused contenders are let go however a test ends,
// pauses at a chosen file operation, and small readers of the outcome.

import { test } from "node:test";
import type { Attempt, Grant } from "../lib/_kind.ts";
import { type LockPaths, lockPaths, parseLockFile } from "../lib/socket/lock_file.ts";
import type { SocketSettings } from "../lib/socket/socket_settings.ts";
import { socketTarget } from "../lib/socket/socket_target.ts";
import { createWorld, gate, type SimulatedProcess, type World } from "./_scripted_runtime.ts";

/** The scripted world's lock directory. */
export const DIR = "/locks";

/** Resolved socket settings for `name` in {@link DIR}. */
export function settings(name: string, extra: Partial<SocketSettings> = {}): SocketSettings {
  return { name, dir: DIR, compat: false, handshakeTimeout: 1_000, ...extra };
}

// Every gate a scenario closes, so a failing scenario never leaves a paused
// contender (and the test run) hanging: interleaving() opens them all.
const gates: (() => void)[] = [];

/** A gate that the scenario's end opens, pass or fail. */
export function tracked(): ReturnType<typeof gate> {
  const g = gate();
  gates.push(g.open);
  return g;
}

/** A scenario test whose paused contenders are let go however it ends. */
export function interleaving(name: string, body: () => Promise<void>): void {
  test(name, async () => {
    try {
      await body();
    } finally {
      for (const open of gates.splice(0)) open();
    }
  });
}

/** `promise`, or a rejection naming `what` after `ms`: a scenario never waits forever. */
export function within<T>(promise: Promise<T>, what: string, ms = 5_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting until ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Pauses `sim` the first time `matches(op, path)` holds, until released. */
export function pauseAt(
  sim: SimulatedProcess,
  matches: (op: string, path: string) => boolean,
): { arrived: Promise<void>; go: () => void } {
  const g = tracked();
  let reached!: () => void;
  const arrived = new Promise<void>((resolve) => (reached = resolve));
  let hit = false;
  sim.hook = async (op, path) => {
    if (hit || !matches(op, path)) return;
    hit = true;
    reached();
    await g.wait();
  };
  return { arrived, go: g.open };
}

/** Ends whatever an attempt holds open; returns its grant, if any. */
export function settle(attempt: Attempt): Grant | null {
  if (attempt.acquired) return attempt.grant;
  attempt.cancelWake?.();
  return null;
}

/** The pid recorded in the world's lock file `file`, if there is one. */
export function holderPid(world: World, file: string): number | undefined {
  const entry = world.files.get(file);
  return entry ? parseLockFile(entry.data)?.pid : undefined;
}

/** A scripted world of processes `pids` in which the first holds `name`. */
export async function heldByFirst(name: string, pids: number[]): Promise<{
  world: World;
  sims: SimulatedProcess[];
  paths: LockPaths;
  grant: Grant;
}> {
  const world = createWorld();
  const sims = pids.map((pid) => world.process(pid));
  await sims[0].runtime.mkdir(DIR, 0o700);
  const paths = lockPaths(DIR, name, false);
  const grant = settle(await socketTarget(sims[0].runtime, settings(name)).tryAcquire())!;
  return { world, sims, paths, grant };
}

/** The error of a process out of file descriptors. */
export const emfile = (): Error =>
  Object.assign(new Error("EMFILE: too many open files"), { code: "EMFILE" });
