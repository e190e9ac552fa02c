// The peer users would pick for file locks in Node: proper-lockfile 4
// (mkdir-based). Its lock+unlock cycle, a failed lock() on a lock another
// process holds (what our tryLock does), and its read-only check().

import lockfile from "proper-lockfile";
import type { BenchCase } from "../_case.ts";
import { measureAcquireRelease, measureContended } from "../_kind_ops.ts";
import { makeLocker } from "../_lockers.ts";

export const properLockfile: BenchCase = {
  name: "proper-lockfile",
  async run(ctx) {
    const locker = await makeLocker("proper-lockfile", ctx.setup);
    await measureAcquireRelease(
      ctx,
      "proper-lockfile",
      locker,
      "lock() + release(), realpath: false",
    );
    await measureContended(
      ctx,
      "proper-lockfile",
      locker,
      "proper-lockfile",
      "contended detection (lock() → ELOCKED)",
    );
    await measureContended(
      ctx,
      "proper-lockfile",
      locker,
      "proper-lockfile",
      "contended check (check() → true)",
      "read-only: stats the lock directory",
      (name) => lockfile.check(`${ctx.dir}/${name}.plf`, { realpath: false }),
    );
  },
};
