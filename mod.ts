/**
 * socketlock: "only one of us at a time" for Deno, Bun and Node — between
 * async tasks, processes on one host, and hosts — behind one small API.
 *
 * @example Hold a lock for a critical section
 * ```ts
 * import { lock } from "jsr:@x/socketlock";
 *
 * const held = await lock("nightly-report", { timeout: 5_000 });
 * try {
 *   console.log(held.info.pid, held.token);
 * } finally {
 *   await held.release();
 * }
 * ```
 *
 * @module
 */

export { inspect, lock, tryLock, withLock } from "./lib/lock.ts";
export {
  lockManager,
  type WebLock,
  type WebLockManager,
  type WebLockRequestOptions,
  type WebLockSnapshot,
  type WebLockSnapshotEntry,
} from "./lib/lock_manager.ts";
export type { HeldLock, LockInfo, LockKind, LockOptions, RetryOptions } from "./lib/types.ts";
export {
  InvalidLockNameError,
  LockAbortedError,
  LockBusyError,
  LockError,
  LockLostError,
  LockPermissionError,
  LockProtocolError,
  LockTimeoutError,
} from "./lib/errors.ts";
export { validateLockName } from "./lib/names.ts";
export { FolderLock } from "./lib/folder/mod.ts";
export { SocketLock, type SocketLockOptions } from "./lib/socket/mod.ts";
export { PortLock, type PortLockOptions } from "./lib/port/mod.ts";
export {
  type RedisAdapter,
  RedisLock,
  type RedisLockOptions,
  type RedisSubscriber,
  Redlock,
  type RedlockOptions,
} from "./lib/redis/mod.ts";
export {
  LockClient,
  type LockClientOptions,
  type LockServer,
  serve,
  type ServeOptions,
  type ServerLease,
  type ServerLimits,
  type ServerLockOptions,
  type ServerStats,
} from "./lib/server/mod.ts";
