// The floors: what the OS and the runtime charge for the steps a lock is
// built from, through the same Runtime adapter the kinds use — an exclusive
// create + unlink of a small file, a bind + close of a socket, and one
// loopback round trip (within one event loop, and to another process).

import type { BenchCase, BenchContext } from "../_case.ts";
import { type Connection, runtime } from "../../lib/runtime/mod.ts";
import { startChild } from "../_children.ts";
import { measureOps } from "../_measure.ts";

/** Times write → echo → read of one byte on `conn`. */
function roundTrips(conn: Connection): () => Promise<void> {
  let pending: (() => void) | null = null;
  conn.onData(() => {
    const done = pending;
    pending = null;
    done?.();
  });
  const byte = new Uint8Array([0x2e]);
  return () =>
    new Promise<void>((resolve) => {
      pending = resolve;
      conn.write(byte);
    });
}

async function fileFloor(ctx: BenchContext): Promise<void> {
  const path = `${ctx.dir}/${ctx.unique("floor")}.file`;
  const data = JSON.stringify({ pid: runtime.pid, port: 40_000, acquiredAt: Date.now() });
  const measured = await measureOps(async () => {
    await runtime.writeFileExclusive(path, data, 0o600);
    await runtime.remove(path);
  }, ctx.budget);
  ctx.record("floor.file", "floor", "exclusive create + unlink of a small file", measured);
}

async function bindFloors(ctx: BenchContext): Promise<void> {
  const tcp = await measureOps(async () => {
    const listener = await runtime.listen(
      { transport: "tcp", hostname: "127.0.0.1", port: 0 },
      (conn) => conn.close(),
    );
    await listener.close();
  }, ctx.budget);
  ctx.record("floor.bind_tcp", "floor", "bind + close, TCP 127.0.0.1:0", tcp);
  if (runtime.platform !== "linux") {
    ctx.skip("floor.bind_abstract", "floor", "bind + close, abstract unix socket", "not Linux");
    return;
  }
  const path = `\0${ctx.unique("socketlock-bench-floor")}`;
  const abstract = await measureOps(async () => {
    const listener = await runtime.listen({ transport: "unix", path }, (conn) => conn.close());
    await listener.close();
  }, ctx.budget);
  ctx.record(
    "floor.bind_abstract",
    "floor",
    "bind + close, abstract unix socket",
    abstract,
    "what the port kind binds on Linux",
  );
}

async function roundTripFloors(ctx: BenchContext): Promise<void> {
  const local = await runtime.listen(
    { transport: "tcp", hostname: "127.0.0.1", port: 0 },
    (conn) => conn.onData((chunk) => conn.write(chunk)),
  );
  ctx.defer(() => local.close());
  const here = await runtime.connect(
    { transport: "tcp", hostname: "127.0.0.1", port: local.port },
    5_000,
  );
  ctx.defer(() => here.close());
  ctx.record(
    "floor.rtt_local",
    "floor",
    "loopback round trip, same process",
    await measureOps(roundTrips(here), ctx.budget),
  );

  const echo = await startChild("echo");
  ctx.defer(() => echo.close());
  const there = await runtime.connect(
    { transport: "tcp", hostname: "127.0.0.1", port: Number(echo.greeting) },
    5_000,
  );
  ctx.defer(() => there.close());
  ctx.record(
    "floor.rtt_process",
    "floor",
    "loopback round trip, to another process",
    await measureOps(roundTrips(there), ctx.budget),
    "the floor of any cross-process handshake, server or Redis request",
  );
}

export const floors: BenchCase = {
  name: "floors",
  async run(ctx) {
    await fileFloor(ctx);
    await bindFloors(ctx);
    await roundTripFloors(ctx);
  },
};
