/**
 * The folder kind: lockfolder's check-bid-check, compatible with Python's
 * `lockfolder` bids.
 *
 * @example Lock a folder shared with Python processes
 * ```ts
 * import { FolderLock } from "jsr:@x/socketlock/folder";
 * const folder = await Deno.makeTempDir();
 * const lock = new FolderLock(folder);
 * await lock.acquire({ timeout: 1_000 });
 * await lock.release();
 * ```
 *
 * @module
 */

export { FolderLock, type FolderLockOptions } from "./folder_lock.ts";
export type { Bid } from "./bid.ts";
export type { HeldLock, LockInfo, LockKind, RetryOptions } from "../types.ts";
