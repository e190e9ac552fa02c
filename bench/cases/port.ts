// The port kind (k3portlock): acquire+release binds and unbinds the name's
// address (an abstract unix socket on Linux); contended detection is a
// failed bind while another process holds it.

import type { BenchCase } from "../_case.ts";
import { measureAcquireRelease, measureContended } from "../_kind_ops.ts";
import { makeLocker } from "../_lockers.ts";

export const port: BenchCase = {
  name: "port",
  async run(ctx) {
    const locker = await makeLocker("port", ctx.setup);
    await measureAcquireRelease(ctx, "port", locker);
    await measureContended(ctx, "port", locker, "port");
  },
};
