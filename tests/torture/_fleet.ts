// Runs one kind's torture: a fleet of worker processes of every runtime
// contending for a few names, a fault schedule (SIGKILL of holders and
// waiters, SIGSTOP past a lease, restarts of the lock service), and the
// history checker judging every record. Returns the run's figures.

import process from "node:process";
import { type Child, type RuntimeName, RUNTIMES, spawnScript } from "../_processes.ts";
import { HistoryChecker, type TortureSummary } from "./_history.ts";
import { startSequencer } from "./_sequencer.ts";

/** A lock service the run can crash and bring back (the server, redis-server). */
export interface Service {
  /** Kills the service (SIGKILL) and resolves once it is gone. */
  crash(): Promise<void>;
  /** Starts it again on the same address. */
  start(): Promise<void>;
}

/** One kind's torture run. */
export interface TortureRun {
  kind: string;
  /** Lock options every worker uses (without the Redis client). */
  options: Record<string, unknown>;
  /** Distinct names the workers contend for. */
  names: string[];
  /** Sections to reach before stopping. */
  sections: number;
  /** Worker processes per runtime, and concurrent loops in each. */
  workersPerRuntime: number;
  loops: number;
  /** Mean time between SIGKILLs of a random worker, in ms. */
  killEveryMs: number;
  /** How many SIGSTOPs of a holder that test something (see stop()), and how long each, in ms. */
  stops: number;
  stopMs: number;
  /** Lease kinds: see CheckerRules.leaseFloorMs. */
  leaseFloorMs: number | null;
  /** A service to restart `restarts` times during the run. */
  service?: Service;
  restarts?: number;
  redisPort?: number;
  /** Longest pause inside a section, in ms. */
  workMs: number;
  /** Gives up (and fails the run) after this long, in ms. */
  timeLimitMs: number;
  /** Workers skip the lock (the harness's own check: it must find violations). */
  broken?: boolean;
  /** Progress lines go here. */
  log?: (line: string) => void;
}

/** What a run reports. */
export interface TortureResult extends TortureSummary {
  kind: string;
  seconds: number;
  errors: Record<string, number>;
  reachedTarget: boolean;
}

interface Worker {
  runtime: RuntimeName;
  child: Child;
  busy: boolean; // being stopped: not to be killed meanwhile
}

const WORKER = new URL("./fixtures/torture_worker.ts", import.meta.url).pathname;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs one kind's torture and returns its figures; never leaves a process behind. */
export async function runTorture(run: TortureRun): Promise<TortureResult> {
  const log = run.log ?? (() => {});
  const checker = new HistoryChecker({ leaseFloorMs: run.leaseFloorMs });
  const sequencer = await startSequencer({
    kind: run.kind,
    names: run.names,
    options: { ...run.options, kind: run.kind },
    redisPort: run.redisPort,
    workMs: run.workMs,
    lostWithinMs: run.leaseFloorMs === null ? 1_000 : run.leaseFloorMs * 6,
    broken: run.broken ?? false,
  }, checker);
  const workers = new Set<Worker>();
  const ids = (w: Worker) =>
    Array.from({ length: run.loops }, (_, i) => `${w.runtime}:${w.child.pid}:${i}`);
  const spawnWorker = (runtime: RuntimeName) => {
    const child = spawnScript(runtime, WORKER, [
      String(sequencer.port),
      String(run.loops),
      runtime,
    ]);
    const worker: Worker = { runtime, child, busy: false };
    workers.add(worker);
    child.done.then(() => workers.delete(worker));
    return worker;
  };
  const signal = (worker: Worker, sig: "SIGKILL" | "SIGSTOP" | "SIGCONT") => {
    try {
      process.kill(worker.child.pid, sig);
    } catch { /* already gone */ }
  };
  const holderOf = (candidates: Worker[]) =>
    candidates.find((w) => ids(w).some((id) => sequencer.inside.has(id)));

  let kills = 0;
  let stops = 0;
  const started = performance.now();
  for (const runtime of RUNTIMES) {
    for (let i = 0; i < run.workersPerRuntime; i++) spawnWorker(runtime);
  }

  const kill = (preferHolder: boolean) => {
    const candidates = [...workers].filter((w) => !w.busy).sort(() => Math.random() - 0.5);
    const victim = (preferHolder ? holderOf(candidates) : undefined) ?? candidates[0];
    if (!victim) return;
    signal(victim, "SIGKILL");
    const at = performance.now();
    for (const id of ids(victim)) sequencer.record({ type: "kill", worker: id, at });
    workers.delete(victim);
    kills++;
    spawnWorker(victim.runtime);
  };

  let lastVictim: Worker | null = null;
  const stop = async () => {
    // Not the last victim: just resumed, it may still be inside a section
    // already taken over, and stopping it again would test nothing.
    const victim = holderOf([...workers].filter((w) => !w.busy && w !== lastVictim));
    if (!victim) return false;
    lastVictim = victim;
    victim.busy = true;
    stops++;
    signal(victim, "SIGSTOP");
    let at = performance.now();
    for (const id of ids(victim)) sequencer.record({ type: "stop", worker: id, at });
    const takeovers = checker.takeovers;
    await sleep(run.stopMs);
    // It counts only if it tested what it is for: the victim was still inside
    // (its exit was not already on the way when it stopped) and, for lease
    // kinds, someone took the lease over meanwhile. Otherwise it is retried.
    const tested = ids(victim).some((id) => sequencer.inside.has(id)) &&
      (run.leaseFloorMs === null || checker.takeovers > takeovers);
    signal(victim, "SIGCONT");
    at = performance.now();
    for (const id of ids(victim)) sequencer.record({ type: "cont", worker: id, at });
    victim.busy = false;
    return tested;
  };

  const restart = async () => {
    // Crash it while someone holds a lock of it, if anyone does within 2 s.
    // "crash" first: workers see their connections close before we see the
    // exit, and may report a loss before "restart" is recorded.
    const until = performance.now() + 2_000;
    while (sequencer.inside.size === 0 && performance.now() < until) await sleep(5);
    sequencer.record({ type: "crash", at: performance.now() });
    await run.service!.crash();
    sequencer.record({ type: "restart", at: performance.now() });
    await run.service!.start();
  };

  // Faults are spread over the run by progress: stop i happens once
  // (i + 0.3) / stops of the sections are done, restarts at (i + 0.6).
  const due = (count: number, offset: number) =>
    Array.from({ length: count }, (_, i) => ((i + offset) / count) * run.sections);
  const stopsDue = due(run.stops, 0.3);
  const restartsDue = due(run.restarts ?? 0, 0.6);
  let nextKill = performance.now() + run.killEveryMs * (0.5 + Math.random());
  let stopping: Promise<unknown> | null = null;
  let reachedTarget = false;
  let lastLog = started;
  try {
    while (performance.now() - started < run.timeLimitMs) {
      const done = sequencer.sections();
      // Done once the target is reached and every scheduled fault happened
      // (a fast kind can pass its target while one name waits out a SIGSTOP).
      if (done >= run.sections && !stopping && !stopsDue.length && !restartsDue.length) {
        reachedTarget = true;
        break;
      }
      if (!stopping && stopsDue.length && done >= stopsDue[0]) {
        stopping = stop().then((ok) => {
          if (ok) stopsDue.shift();
          stopping = null;
        });
      } else if (!stopping && restartsDue.length && done >= restartsDue[0]) {
        restartsDue.shift();
        stopping = restart().then(() => (stopping = null));
      } else if (performance.now() >= nextKill) {
        kill(Math.random() < 0.5);
        nextKill = performance.now() + run.killEveryMs * (0.5 + Math.random());
      }
      if (performance.now() - lastLog > 5_000) {
        lastLog = performance.now();
        log(`${run.kind}: ${done} sections, ${workers.size} workers`);
      }
      await sleep(10);
    }
    await stopping;
    // Let everyone finish the section it is in, then make sure all are gone.
    sequencer.stopAll();
    const deadline = performance.now() + 20_000;
    while (workers.size > 0 && performance.now() < deadline) await sleep(20);
    for (const worker of workers) signal(worker, "SIGKILL");
  } finally {
    for (const worker of workers) {
      signal(worker, "SIGCONT");
      signal(worker, "SIGKILL");
    }
    await Promise.all([...workers].map((w) => w.child.done));
    await sequencer.close();
  }
  const summary = checker.finish();
  // The checker sees one record per loop; count faults per process.
  summary.faults.kill = kills;
  summary.faults.stop = stops;
  return {
    kind: run.kind,
    ...summary,
    seconds: (performance.now() - started) / 1000,
    errors: Object.fromEntries(sequencer.errors),
    reachedTarget,
  };
}

/** One line per figure, for the test log and the README. */
export function describeResult(result: TortureResult): string {
  const f = result.faults;
  return `${result.kind}: ${result.sections} sections in ${result.seconds.toFixed(1)} s; ` +
    `faults: ${f.kill} SIGKILL (${f.killInside} of holders), ${f.stop} SIGSTOP, ` +
    `${f.restart} restarts; takeovers ${result.takeovers}, stale writes refused ` +
    `${result.staleWritesRejected}, losses reported ${result.lostReported} ` +
    `(${result.unexpectedLosses} without a fault); ` +
    `violations ${result.violations.length}`;
}
