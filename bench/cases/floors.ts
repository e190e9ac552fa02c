// The floors: what the OS and the runtime charge for the steps a lock is
// built from, through the same Runtime adapter the kinds use — an exclusive
// create + unlink of a small file, a bind + close of a socket, and one
// loopback round trip (within one event loop, and to another process) —
// and the file and socket steps of one socket-kind and one folder-kind
// acquire+release, made raw, in the same order, with no library logic: what
// those kinds' designs cost before a line of theirs runs.

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

// One socket-kind cycle's steps (see lib/socket/lock_file.ts and
// socket_target.ts): the lock file created whole (temp file, link, unlink
// the temp), the token floor read from `.last`; at release the key file's
// lstat, the breaker lock bound, the lock file read back, `.last` replaced
// by the lock file, the breaker lock closed.
async function socketStepsFloor(ctx: BenchContext, data: string): Promise<void> {
  const base = `${ctx.dir}/${ctx.unique("floor-socket")}`;
  const [file, last, key] = [`${base}.lock`, `${base}.lock.last`, `${base}.key`];
  const breaker = `\0${ctx.unique("socketlock-bench-floor-breaker")}`;
  await runtime.writeFileExclusive(key, "k", 0o600);
  await runtime.writeFileExclusive(last, data, 0o600);
  let n = 0;
  const measured = await measureOps(async () => {
    const temp = `${file}.${n++}.tmp`;
    await runtime.writeFileExclusive(temp, data, 0o600);
    await runtime.link(temp, file);
    await runtime.remove(temp);
    await runtime.readFile(last);
    await runtime.lstat(key);
    const held = await runtime.listen({ transport: "unix", path: breaker }, (c) => c.close());
    await runtime.readFile(file);
    await runtime.remove(last);
    await runtime.rename(file, last);
    await held.close();
  }, ctx.budget);
  ctx.record(
    "floor.socket_steps",
    "floor",
    "the socket kind's file and socket steps, raw",
    measured,
    "one acquire+release's system calls in its order, without the library",
  );
}

// One folder-kind cycle's steps (see lib/folder/check_bid_check.ts): the bid
// written whole (temp file, rename), the folder listed, the token file read
// and rewritten, the bid removed.
async function folderStepsFloor(ctx: BenchContext, data: string): Promise<void> {
  const folder = `${ctx.dir}/${ctx.unique("floor-folder")}.folder`;
  await runtime.mkdir(folder, 0o700);
  await runtime.writeFile(`${folder}/token`, "1", 0o600);
  let n = 0;
  const measured = await measureOps(async () => {
    const [temp, bid] = [`${folder}/.${n}.tmp`, `${folder}/${n++}.json`];
    await runtime.writeFileExclusive(temp, data, 0o600);
    await runtime.rename(temp, bid);
    await runtime.readDir(folder);
    await runtime.updateFile(`${folder}/token`, (text) => String(Number(text) + 1));
    await runtime.remove(bid);
  }, ctx.budget);
  ctx.record(
    "floor.folder_steps",
    "floor",
    "the folder kind's file steps, raw",
    measured,
    "one acquire+release's system calls in its order, without the library",
  );
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
    // A lock file's size: what the kinds write.
    const data = JSON.stringify({
      pid: runtime.pid,
      port: 40_000,
      acquiredAt: Date.now(),
      host: runtime.hostname(),
      id: crypto.randomUUID(),
      token: Date.now() * 1000,
    });
    await socketStepsFloor(ctx, data);
    await folderStepsFloor(ctx, data);
    await roundTripFloors(ctx);
  },
};
