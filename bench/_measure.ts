// How every figure is taken: warm up, repeat, report the median of the
// repeats and their spread as the noise. Three shapes of measurement:
// - measureOps: a short operation run back to back. Ops under 20 µs are timed
//   in batches (per-op figures are batch means), so performance.now() costs
//   and its resolution do not dominate; slower ops are timed one by one.
//   Every TURN_EVERY ops the event loop gets a turn (timed with the op that
//   gives it), as in any program between two locks: Node finishes closing
//   a socket only in a turn, and a loop that never gives one kept every
//   closed listener alive, which cost the port kind a fifth of its time in
//   garbage collection.
// - measureSamples: each sample is one timed event (a hand-off), µs.
// - measureWindows: a load runs for a window and returns its op count and
//   per-op latencies (throughput with many clients).

import { setImmediate } from "node:timers";
import { preciseWallClock } from "../lib/_precise_wall_clock.ts";

/** How many back-to-back ops run between two turns of the event loop. */
export const TURN_EVERY = 32;

let sinceTurn = 0;

/** Runs `op`, then gives the event loop a turn if TURN_EVERY ops ran without one. */
async function opWithTurns(op: () => Promise<unknown>): Promise<void> {
  await op();
  if (++sinceTurn < TURN_EVERY) return;
  sinceTurn = 0;
  await new Promise<void>((resolve) => setImmediate(resolve));
}

/** How long and how often to measure. */
export interface Budget {
  /** Warm-up time before the first repeat, ms. */
  warmupMs: number;
  /** How many repeats (each yields one p50/p99/ops-per-second). */
  repeats: number;
  /** Length of one repeat of a back-to-back op, ms. */
  repeatMs: number;
  /** Upper bound on ops in one repeat (or in the warm-up). */
  maxOps: number;
  /** Samples per repeat of a one-event measurement (hand-off). */
  samples: number;
  /** Length of one throughput window, ms. */
  windowMs: number;
}

/** The default run: all three runtimes in under 3 minutes on 2 cores. */
export const SHORT: Budget = {
  warmupMs: 150,
  repeats: 5,
  repeatMs: 200,
  maxOps: 50_000,
  samples: 10,
  windowMs: 400,
};

/** `--full`: longer warm-ups, more and longer repeats. */
export const FULL: Budget = {
  warmupMs: 1_000,
  repeats: 10,
  repeatMs: 1_500,
  maxOps: 2_000_000,
  samples: 40,
  windowMs: 2_000,
};

/** One measured figure, aggregated over its repeats. */
export interface Measured {
  /** Median over repeats of each repeat's median latency, µs. */
  p50Us: number;
  /** Median over repeats of each repeat's 99th percentile, µs. */
  p99Us: number;
  /** Median over repeats of operations per second (null where it means nothing). */
  opsPerSec: number | null;
  /** Half the spread of the repeats' p50 around their median, in ± %. */
  noisePct: number;
  /** How many repeats. */
  repeats: number;
  /** Samples (timings) per repeat, median. */
  samples: number;
  /** How the op was timed, for the report ("per op", "batches of 64", ...). */
  method: string;
}

/** Batches are sized to last about this long, µs. */
const BATCH_TARGET_US = 200;
/** Ops slower than this (mean, µs) are timed one by one. */
const PER_OP_THRESHOLD_US = 20;

/** The `q`-quantile (0..1) of `values` (nearest rank; NaN if empty). */
export function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

/** The median of `values`. */
export function median(values: number[]): number {
  return quantile(values, 0.5);
}

interface Repeat {
  p50: number;
  p99: number;
  opsPerSec: number | null;
  samples: number;
}

function aggregate(repeats: Repeat[], method: string): Measured {
  const p50s = repeats.map((r) => r.p50);
  const mid = median(p50s);
  const spread = Math.max(...p50s) - Math.min(...p50s);
  const rates = repeats.flatMap((r) => r.opsPerSec === null ? [] : [r.opsPerSec]);
  return {
    p50Us: mid,
    p99Us: median(repeats.map((r) => r.p99)),
    opsPerSec: rates.length ? median(rates) : null,
    noisePct: mid > 0 ? (spread / 2 / mid) * 100 : 0,
    repeats: repeats.length,
    samples: median(repeats.map((r) => r.samples)),
    method,
  };
}

/**
 * Runs `op` back to back: warm-up, then `budget.repeats` repeats of
 * `budget.repeatMs` each.
 *
 * @param op One operation (e.g. acquire + release).
 * @param budget Time and count bounds.
 * @returns The aggregated figure.
 */
export async function measureOps(
  op: () => Promise<unknown>,
  budget: Budget,
): Promise<Measured> {
  let warmOps = 0;
  const warmStart = performance.now();
  while (performance.now() - warmStart < budget.warmupMs && warmOps < budget.maxOps) {
    await opWithTurns(op);
    warmOps++;
  }
  const meanUs = ((performance.now() - warmStart) * 1000) / Math.max(1, warmOps);
  const batch = meanUs >= PER_OP_THRESHOLD_US
    ? 1
    : Math.min(1_000, Math.max(2, Math.ceil(BATCH_TARGET_US / Math.max(meanUs, 0.01))));
  const repeats: Repeat[] = [];
  for (let r = 0; r < budget.repeats; r++) {
    const samples: number[] = [];
    let ops = 0;
    const start = performance.now();
    let now = start;
    while (now - start < budget.repeatMs && ops < budget.maxOps) {
      const t0 = now;
      for (let i = 0; i < batch; i++) await opWithTurns(op);
      now = performance.now();
      samples.push(((now - t0) * 1000) / batch);
      ops += batch;
    }
    repeats.push({
      p50: quantile(samples, 0.5),
      p99: quantile(samples, 0.99),
      opsPerSec: ops / ((now - start) / 1000),
      samples: samples.length,
    });
  }
  return aggregate(repeats, batch === 1 ? "per op" : `batch means (${batch} ops)`);
}

/**
 * Takes `budget.samples` samples per repeat after `warmup` discarded ones.
 *
 * @param sample Takes one sample and returns it in µs.
 * @param budget Repeats and samples per repeat.
 * @param warmup Samples to discard first.
 * @returns The aggregated figure (no ops/s).
 */
export async function measureSamples(
  sample: () => Promise<number>,
  budget: Budget,
  warmup = 3,
): Promise<Measured> {
  for (let i = 0; i < warmup; i++) await sample();
  const repeats: Repeat[] = [];
  const count = Math.max(1, Math.round(budget.samples));
  // Fewer, longer repeats read better for slow events: 3 in short runs.
  const repeatCount = Math.max(3, Math.round(budget.repeats / 2));
  for (let r = 0; r < repeatCount; r++) {
    const samples: number[] = [];
    for (let i = 0; i < count; i++) samples.push(await sample());
    repeats.push({
      p50: quantile(samples, 0.5),
      p99: quantile(samples, 0.99),
      opsPerSec: null,
      samples: samples.length,
    });
  }
  return aggregate(repeats, "per event");
}

/** What one throughput window did. */
export interface WindowResult {
  /** Operations (e.g. acquire+release pairs) completed in the window. */
  ops: number;
  /** How long the window really lasted, ms. */
  elapsedMs: number;
  /** Latency of each acquire in the window, µs. */
  latenciesUs: number[];
}

/**
 * Runs a load for a warm-up window, then `budget.repeats` (at least 3)
 * measured windows.
 *
 * @param window Runs the load for `ms` and reports it.
 * @param budget Window length and repeats.
 * @returns The aggregated figure: ops/s, p50/p99 of the latencies.
 */
export async function measureWindows(
  window: (ms: number) => Promise<WindowResult>,
  budget: Budget,
): Promise<Measured> {
  await window(Math.max(100, budget.warmupMs));
  const repeats: Repeat[] = [];
  const count = Math.max(3, Math.round(budget.repeats / 2));
  for (let r = 0; r < count; r++) {
    const result = await window(budget.windowMs);
    repeats.push({
      p50: quantile(result.latenciesUs, 0.5),
      p99: quantile(result.latenciesUs, 0.99),
      opsPerSec: result.ops / (result.elapsedMs / 1000),
      samples: result.latenciesUs.length,
    });
  }
  return aggregate(repeats, "per acquire, in windows");
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Wall-clock time in µs with sub-ms resolution, comparable across processes:
 * the library's calibrated clock, since `performance.timeOrigin` can be a
 * fraction of a ms off in processes started in a burst.
 */
export function wallMicros(): number {
  return preciseWallClock() * 1000;
}
