// The two operations measured for every kind and peer: an uncontended
// acquire+release, and contended detection (a try on a name another process
// holds, which for the socket kind includes the handshake with the holder).

import type { BenchContext } from "./_case.ts";
import type { Locker, LockerKind } from "./_lockers.ts";
import { measureOps } from "./_measure.ts";

/**
 * Measures `locker.lock(name)` + `release()` back to back on a free name.
 *
 * @param ctx The benchmark context.
 * @param kind Row label and id prefix.
 * @param locker The locker to measure.
 * @param note Shown under the table.
 */
export async function measureAcquireRelease(
  ctx: BenchContext,
  kind: string,
  locker: Locker,
  note?: string,
): Promise<void> {
  const name = ctx.unique(`${kind}-ar`);
  const measured = await measureOps(async () => {
    const held = await locker.lock(name);
    await held.release();
  }, ctx.budget);
  ctx.record(`${kind}.acquire_release`, kind, "acquire+release", measured, note);
}

/**
 * Measures `locker.tryLock(name)` while the holder child holds `name`
 * through a locker of `holderKind`; every try must find it held.
 *
 * @param ctx The benchmark context.
 * @param kind Row label and id prefix.
 * @param locker The locker whose tries are measured.
 * @param holderKind How the child holds the name (the same kind or peer).
 * @param operation Row label.
 * @param note Shown under the table.
 * @param probe What to time instead of `tryLock` (e.g. a read-only check).
 * @throws {Error} If a try takes the lock: the figure would be wrong.
 */
export async function measureContended(
  ctx: BenchContext,
  kind: string,
  locker: Locker,
  holderKind: LockerKind,
  operation = "contended detection (tryLock on a held lock)",
  note?: string,
  probe?: (name: string) => Promise<boolean>,
): Promise<void> {
  const name = ctx.unique(`${kind}-busy`);
  const holder = await ctx.holder();
  await holder.ask(`hold ${holderKind} ${name}`);
  try {
    const isHeld = probe ?? (async (n: string) => {
      const held = await locker.tryLock(n);
      if (!held) return true;
      await held.release();
      return false;
    });
    const measured = await measureOps(async () => {
      if (!(await isHeld(name))) throw new Error(`${kind}: a try found "${name}" free while held`);
    }, ctx.budget);
    const id = probe ? `${kind}.contended_probe` : `${kind}.contended`;
    ctx.record(id, kind, operation, measured, note);
  } finally {
    await holder.ask("release");
  }
}
