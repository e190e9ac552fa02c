// The server kind (distlockd's successor): a lock server in another process
// of this runtime (serve({ port: 0 })), clients with LockClient. Measured:
// acquire+release, contended detection, hand-off, and throughput with 10
// clients each on its own name and 100 clients over 10 names — each client
// a LockClient with its own connection, and again through lock(name,
// { server }), whose calls in one process share one connection; and, as
// their floor, a bare protocol client (_bare_server_client.ts).

import type { BenchCase } from "../_case.ts";
import { startChild } from "../_children.ts";
import { measureAcquireRelease, measureContended } from "../_kind_ops.ts";
import { loadServerModule, makeLocker } from "../_lockers.ts";
import { measureThroughput } from "../_throughput.ts";
import { measureHandoff } from "./handoff.ts";

const ROWS: [string, string][] = [
  ["server.acquire_release", "acquire+release"],
  ["server.contended", "contended detection (tryLock on a held lock)"],
  ["server.handoff", "hand-off to a waiting process"],
  ["server.throughput_own", "throughput, 10 clients each on its own name"],
  ["server.throughput_shared", "throughput, 100 clients × 10 names"],
  [
    "server.throughput_own_api",
    "throughput, 10 clients each on its own name, lock(name, { server }) (one connection per process)",
  ],
  [
    "server.throughput_shared_api",
    "throughput, 100 clients × 10 names, lock(name, { server }) (one connection per process)",
  ],
  [
    "floor.server_own",
    "server throughput, 10 clients each on its own name, bare protocol client (one connection per process)",
  ],
  [
    "floor.server_shared",
    "server throughput, 100 clients × 10 names, bare protocol client (one connection per process)",
  ],
];

export const server: BenchCase = {
  name: "server",
  async run(ctx) {
    const mod = await loadServerModule();
    if (typeof mod === "string") {
      for (const [id, operation] of ROWS) ctx.skip(id, "server", operation, mod);
      return;
    }
    const child = await startChild("server");
    ctx.defer(() => child.close());
    ctx.setup.serverPort = Number(child.greeting);
    const locker = await makeLocker("server", ctx.setup);
    ctx.defer(() => locker.close());
    const where = "server in another process; one client connection";
    await measureAcquireRelease(ctx, "server", locker, where);
    await measureContended(ctx, "server", locker, "server", undefined, where);
    await measureHandoff(ctx, "server", locker, "the server tells the waiter");
    await measureThroughput(ctx, "server", 10, 10, ROWS[3][0], ROWS[3][1]);
    await measureThroughput(ctx, "server", 100, 10, ROWS[4][0], ROWS[4][1]);
    // The same loads through the unified API: a process's lock() calls share
    // one connection, so replies and requests travel in batches.
    await measureThroughput(ctx, "server-api", 10, 10, ROWS[5][0], ROWS[5][1], "server");
    await measureThroughput(ctx, "server-api", 100, 10, ROWS[6][0], ROWS[6][1], "server");
    // What the server sustains for a client that does nothing else.
    await measureThroughput(ctx, "server-bare", 10, 10, ROWS[7][0], ROWS[7][1], "floor");
    await measureThroughput(ctx, "server-bare", 100, 10, ROWS[8][0], ROWS[8][1], "floor");
  },
};
