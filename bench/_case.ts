// What a benchmark case is, what it records, and the context main.ts hands it.

import type { Budget, Measured } from "./_measure.ts";
import type { ChildLink } from "./_children.ts";
import type { LockerSetup } from "./_lockers.ts";

/** The runtimes the benchmark runs in. */
export type RuntimeName = "deno" | "bun" | "node";

/** A figure that was measured. */
export interface MeasuredResult extends Measured {
  status: "ok";
  /** Stable id, e.g. `socket.acquire_release`: the report and the goals key on it. */
  id: string;
  /** Row label: a kind of ours, a peer, or `floor`. */
  kind: string;
  /** Row label: what was done. */
  operation: string;
  /** Anything the reader must know to read the figure right. */
  note?: string;
}

/** A figure that was not measured, and why. */
export interface SkippedResult {
  status: "skipped";
  id: string;
  kind: string;
  operation: string;
  reason: string;
}

/** One row of a runtime's results. */
export type Result = MeasuredResult | SkippedResult;

/** What one runtime's run writes (JSON), for report.ts. */
export interface RunFile {
  runtime: RuntimeName;
  /** e.g. `deno 2.5.6 (v8 …)`. */
  version: string;
  full: boolean;
  startedAt: string;
  elapsedMs: number;
  /** 1-minute load average at the start and the end of the run. */
  load?: [number, number];
  /** Where the private lock directory was, and its file system. */
  lockDir?: string;
  results: Result[];
}

/** What every case gets. */
export interface BenchContext {
  readonly runtime: RuntimeName;
  readonly budget: Budget;
  readonly full: boolean;
  /** A private lock directory (0700), removed at the end. */
  readonly dir: string;
  /** The benchmark's redis-server, if run.sh started one. */
  readonly redis: { host: string; port: number } | null;
  /** Where lockers (here and in children) find the directory, server and Redis. */
  readonly setup: LockerSetup;
  /** The shared holder child (started on first use), told the current `setup`. */
  holder(): Promise<ChildLink>;
  /** A lock name unique to this run. */
  unique(prefix: string): string;
  /** Records a measured figure and prints it. */
  record(id: string, kind: string, operation: string, measured: Measured, note?: string): void;
  /** Records a figure that could not be taken, and prints why. */
  skip(id: string, kind: string, operation: string, reason: string): void;
  /** Runs `fn` at the end of the run (children, clients, files), last in first out. */
  defer(fn: () => unknown): void;
}

/** One measured thing. */
export interface BenchCase {
  /** Short name used by `--only`. */
  name: string;
  run(ctx: BenchContext): Promise<void>;
}
