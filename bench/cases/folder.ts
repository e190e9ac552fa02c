// The folder kind (lockfolder's check-bid-check): acquire+release of a free
// lock, and contended detection — tryLock on a folder another process bids in.

import type { BenchCase } from "../_case.ts";
import { measureAcquireRelease, measureContended } from "../_kind_ops.ts";
import { makeLocker } from "../_lockers.ts";

export const folder: BenchCase = {
  name: "folder",
  async run(ctx) {
    const locker = await makeLocker("folder", ctx.setup);
    await measureAcquireRelease(ctx, "folder", locker);
    await measureContended(ctx, "folder", locker, "folder");
  },
};
