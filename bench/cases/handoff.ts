// Hand-off latency: a holder in another process releases, and a waiter here,
// already waiting in lock(), holds. The child stamps the wall clock (µs)
// just before it calls release(); we stamp it when our lock() resolves.
// Kinds that can be told of a release (socket, port, server, redis) wake at
// once; polling kinds and peers pay up to their retry interval.

import type { BenchCase, BenchContext } from "../_case.ts";
import { clockOffset } from "../_children.ts";
import { type Locker, type LockerKind, makeLocker, PEER_RETRY_MS } from "../_lockers.ts";
import { measureSamples, sleep, wallMicros } from "../_measure.ts";

/**
 * How long the waiter waits before the holder releases, ms, at least: a
 * random share of a polling peer's retry interval is added to each sample,
 * so a release falls anywhere between two of its tries.
 */
const SETTLE_MS = 20;
/** A hand-off that takes longer than this fails the measurement, ms. */
const HANDOFF_LIMIT_MS = 10_000;

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

/**
 * Measures the hand-off from the holder child to a waiter here.
 *
 * @param ctx The benchmark context.
 * @param kind How both sides lock (our kind or a peer); also the row label.
 * @param locker The waiter's locker.
 * @param note Shown under the table.
 * @throws {Error} If the waiter gets the lock before the holder released it.
 */
export async function measureHandoff(
  ctx: BenchContext,
  kind: LockerKind,
  locker: Locker,
  note?: string,
): Promise<void> {
  const holder = await ctx.holder();
  // Both stamps come from each process's calibrated wall clock; correct for
  // an offset between the two processes only where one is measurable.
  const clock = await clockOffset(holder);
  const offset = Math.abs(clock.offsetUs) > clock.uncertaintyUs ? clock.offsetUs : 0;
  const name = ctx.unique(`${kind}-handoff`);
  const measured = await measureSamples(async () => {
    await holder.ask(`hold ${kind} ${name}`);
    let acquiredAt = 0;
    const waiting = locker.lock(name).then((held) => {
      acquiredAt = wallMicros();
      return held;
    });
    await sleep(SETTLE_MS + Math.random() * PEER_RETRY_MS);
    if (acquiredAt) throw new Error(`${kind}: the waiter got "${name}" while it was held`);
    const releasedAt = Number(await holder.ask("release")) - offset;
    const held = await within(waiting, HANDOFF_LIMIT_MS, `${kind} hand-off`);
    await held.release();
    return acquiredAt - releasedAt;
  }, ctx.budget);
  const clockNote = offset
    ? `clock offset ${offset.toFixed(0)} µs corrected (±${clock.uncertaintyUs.toFixed(0)} µs)`
    : `clocks agree within ±${clock.uncertaintyUs.toFixed(0)} µs`;
  ctx.record(
    `${kind}.handoff`,
    kind,
    "hand-off to a waiting process",
    measured,
    [note, `waiter waits ${SETTLE_MS}–${SETTLE_MS + PEER_RETRY_MS} ms first; ${clockNote}`].filter(
      Boolean,
    ).join("; "),
  );
}

export const handoff: BenchCase = {
  name: "handoff",
  async run(ctx) {
    for (const kind of ["socket", "port", "folder"] as const) {
      await measureHandoff(
        ctx,
        kind,
        await makeLocker(kind, ctx.setup),
        kind === "folder"
          ? "waiters poll: backoff 1 ms doubling to 100 ms, ±50 % (default)"
          : undefined,
      );
    }
    await measureHandoff(
      ctx,
      "proper-lockfile",
      await makeLocker("proper-lockfile", ctx.setup),
      `retries every ${PEER_RETRY_MS} ms (its default is not to wait at all)`,
    );
  },
};
