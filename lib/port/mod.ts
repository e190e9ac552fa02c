/**
 * The port kind: k3portlock's lock by binding (Linux: the abstract unix
 * socket `"\0/portlock/" + key`; elsewhere 2 of 3 TCP ports on 127.0.0.1),
 * shared with Python's k3portlock. No files; the OS frees it on death.
 *
 * @example Hold a lock Python's `Portlock("nightly")` also respects
 * ```ts
 * import { PortLock } from "jsr:@x/socketlock/port";
 * const lock = new PortLock("nightly", { timeout: 1_000 });
 * await lock.acquire();
 * await lock.release();
 * ```
 *
 * @module
 */

export { PortLock, type PortLockOptions } from "./port_lock.ts";
export { abstractName, basePort, MAX_PORT_KEY_BYTES, validatePortKey } from "./port_name.ts";
export type { HeldLock, LockInfo, LockKind, RetryOptions } from "../types.ts";
