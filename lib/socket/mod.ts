/**
 * The socket kind (the default): an atomically created lock file naming a
 * loopback port whose listener proves, by a keyed challenge/response, that
 * the holder is alive. The OS closes the port when the holder dies; the next
 * contender's handshake fails and it breaks the stale file safely. Waiters
 * keep a connection to the holder and wake the moment it closes. With
 * `compat: "socketlock"` it interoperates with Python's socketlock.
 *
 * @example Hold a socket lock with the seed's surface
 * ```ts
 * import { SocketLock } from "jsr:@x/socketlock/socket";
 * const lock = new SocketLock("nightly-report");
 * if (await lock.tryAcquire()) {
 *   try {
 *     console.log(`held by pid ${lock.pid} on port ${lock.port}`);
 *   } finally {
 *     await lock.release();
 *   }
 * }
 * ```
 *
 * @module
 */

export { SocketLock, type SocketLockOptions } from "./socket_lock.ts";
export { type LockRecord, parseLockFile } from "./lock_file.ts";
export type { HeldLock, LockInfo, LockKind, LockOptions, RetryOptions } from "../types.ts";
