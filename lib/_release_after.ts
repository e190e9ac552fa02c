// Running a critical section under a held lock and giving the lock back
// however the section ends (withLock, lockManager().request()).

import type { HeldLock } from "./types.ts";

/**
 * Runs `section`, then releases `held`. If the section throws, its error is
 * the one to see: a release failing after it is dropped.
 *
 * @example Run a section under a lock
 * ```ts
 * import { releaseAfter } from "./_release_after.ts";
 * import { lock } from "./lock.ts";
 * const held = await lock("report");
 * console.log(await releaseAfter(held, () => held.token > 0)); // true
 * ```
 *
 * @param held The lock the section runs under.
 * @param section The critical section.
 * @returns What `section` returns.
 */
export async function releaseAfter<T>(held: HeldLock, section: () => T | Promise<T>): Promise<T> {
  let result: T;
  try {
    result = await section();
  } catch (error) {
    await held.release().catch(() => {});
    throw error;
  }
  await held.release();
  return result;
}
