/**
 * The lock server kind: `serve()` runs a small TCP lock server (FIFO
 * waiters, leases, fencing tokens, crash release, distlockd wire
 * compatibility) and `LockClient` talks to it. `lock(name, { server })`
 * from the main module reaches the same server.
 *
 * @example Serve and lock in one process
 * ```ts
 * import { LockClient, serve } from "jsr:@x/socketlock/server";
 * await using server = await serve({ port: 0 });
 * await using client = new LockClient({ port: server.address.port });
 * const lease = await client.acquire("jobs", { timeout: 1_000 });
 * console.log(lease.token);
 * await client.release("jobs");
 * ```
 *
 * @module
 */

export {
  type LockServer,
  serve,
  type ServeOptions,
  type ServerLimits,
  type ServerStats,
} from "./serve.ts";
export {
  LockClient,
  type LockClientOptions,
  type ServerLease,
  type ServerLockOptions,
} from "./lock_client.ts";
export { DEFAULT_PORT, parseServerAddress } from "./server_address.ts";
export type { HeldLock, LockInfo, LockKind, RetryOptions } from "../types.ts";
