// The socket kind (the default): acquire+release of a free lock, and
// contended detection — tryLock on a lock another process holds, which
// reads the lock file and runs the HMAC handshake with the live holder.

import type { BenchCase } from "../_case.ts";
import { measureAcquireRelease, measureContended } from "../_kind_ops.ts";
import { makeLocker } from "../_lockers.ts";

export const socket: BenchCase = {
  name: "socket",
  async run(ctx) {
    const locker = await makeLocker("socket", ctx.setup);
    await measureAcquireRelease(ctx, "socket", locker);
    await measureContended(
      ctx,
      "socket",
      locker,
      "socket",
      "contended detection (tryLock on a held lock, incl. handshake)",
      "the holder is another process: the handshake is a cross-process round trip",
    );
  },
};
