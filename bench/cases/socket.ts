// The socket kind (the default): acquire+release of a free lock, and
// contended detection — tryLock on a lock another process holds. The first
// try reads the lock file and runs the HMAC handshake with the live holder;
// later tries on the same acquisition reuse the verified connection (open
// until the holder lets go), so both are measured: repeated tryLock, and one
// fresh handshake (what every first try, and every new holder, costs).

import type { BenchCase, BenchContext } from "../_case.ts";
import { measureAcquireRelease, measureContended } from "../_kind_ops.ts";
import { makeLocker } from "../_lockers.ts";
import { measureOps } from "../_measure.ts";
import { runtime } from "../../lib/runtime/mod.ts";
import { importHmacKey } from "../../lib/socket/handshake.ts";
import { lockPaths, parseLockFile } from "../../lib/socket/lock_file.ts";
import { loadSecret } from "../../lib/socket/secret.ts";
import { verifyHolder } from "../../lib/socket/verify_holder.ts";

/** Read the lock file + a fresh connection and handshake + close, as a first try does. */
async function measureFreshHandshake(ctx: BenchContext): Promise<void> {
  const name = ctx.unique("socket-handshake");
  const holder = await ctx.holder();
  await holder.ask(`hold socket ${name}`);
  try {
    const key = importHmacKey(await loadSecret(runtime, ctx.dir));
    const file = lockPaths(ctx.dir, name, false).file;
    const measured = await measureOps(async () => {
      const record = parseLockFile(await runtime.readFile(file));
      if (!record) throw new Error(`socket: ${file} is not a lock file`);
      const verdict = await verifyHolder(runtime, record, { name, key, probe: "", timeout: 1_000 });
      if (!verdict.live) throw new Error(`socket: the holder of "${name}" did not verify`);
      verdict.conn?.close();
    }, ctx.budget);
    ctx.record(
      "socket.contended_handshake",
      "socket",
      "contended detection, first try (read + fresh handshake)",
      measured,
      "a new connection and one cross-process round trip per try",
    );
  } finally {
    await holder.ask("release");
  }
}

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
      "contended detection (tryLock on a held lock)",
      "the holder is another process; the first try verified it by handshake, later tries " +
        "reuse that connection (the holder closes it when it lets go): see the first-try row",
    );
    await measureFreshHandshake(ctx);
  },
};
