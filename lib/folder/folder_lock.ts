/**
 * `FolderLock`: lockfolder's check-bid-check lock on a folder you choose, the
 * folder a Python lockfolder fleet already uses, with waiting added.
 *
 * @module
 */

import { runtime } from "../runtime/mod.ts";
import { InvalidLockNameError } from "../errors.ts";
import type { HeldLock, LockInfo, RetryOptions } from "../types.ts";
import { type HeldSlot, releaseFrom, type SlotRequest, takeInto } from "../_held_slot.ts";
import type { LockTarget } from "../_kind.ts";
import { folderTarget } from "./folder_target.ts";
import { asyncDispose } from "../_async_dispose.ts";

/** Options of {@link FolderLock}. */
export interface FolderLockOptions {
  /** Backoff between attempts while waiting. */
  retry?: RetryOptions;
}

/**
 * A check-bid-check lock on one folder, readable and writable by Python's
 * `lockfolder` so mixed fleets exclude each other.
 *
 * @example Guard a job with a folder Python processes also use
 * ```ts
 * import { FolderLock } from "jsr:@x/socketlock";
 * const folder = await Deno.makeTempDir();
 * const lock = new FolderLock(folder);
 * if (await lock.tryAcquire()) {
 *   try { console.log("working"); } finally { await lock.release(); }
 * }
 * ```
 */
export class FolderLock {
  /** The lock folder. */
  readonly folder: string;
  #target: LockTarget;
  #slot: HeldSlot = { held: null };
  #request: SlotRequest;

  /**
   * Creates a lock on `folder` (created 0700 on first use).
   *
   * @param folder The lock folder; every `*.json` file in it is a bid.
   * @param options Backoff for {@link FolderLock.acquire}.
   */
  constructor(folder: string, options: FolderLockOptions = {}) {
    if (typeof folder !== "string" || folder === "") {
      throw new InvalidLockNameError(
        String(folder),
        "a FolderLock needs the path of a folder",
        'Pass one, e.g. new FolderLock("/srv/locks/report").',
      );
    }
    this.folder = folder.replace(/\/+$/, "") || "/";
    const name = this.folder.split("/").pop() || this.folder;
    this.#target = folderTarget(runtime, name, this.folder);
    this.#request = {
      name: this.folder,
      label: `FolderLock on ${this.folder}`,
      kind: "folder",
      target: this.#target,
      runtime,
      retry: options.retry,
    };
  }

  /** The held lock, while this object holds it. */
  get held(): HeldLock | null {
    return this.#slot.held;
  }

  /**
   * One check-bid-check round; never waits.
   *
   * @returns true if the lock is now held by this object.
   * @throws {LockError} If this object already holds the lock.
   */
  async tryAcquire(): Promise<boolean> {
    return (await takeInto(this.#slot, this.#request, false)) !== null;
  }

  /**
   * Waits for the lock with capped, jittered backoff.
   *
   * @param options `timeout` in ms (default: forever), `signal` to cancel.
   * @throws {LockTimeoutError} If the timeout runs out.
   * @throws {LockAbortedError} If the signal aborts the wait.
   */
  async acquire(options: { timeout?: number; signal?: AbortSignal } = {}): Promise<void> {
    await takeInto(this.#slot, this.#request, true, options.timeout, options.signal);
  }

  /** Withdraws this object's bid. Does nothing if it holds no lock. */
  release(): Promise<void> {
    return releaseFrom(this.#slot);
  }

  /** Releases the lock at the end of an `await using` scope. */
  [asyncDispose](): Promise<void> {
    return this.release();
  }

  /**
   * The live holder's info (challenging and clearing stale bids on the way).
   *
   * @returns The holder, or null if the folder holds no live bid.
   */
  getLockInfo(): Promise<LockInfo | null> {
    return this.#slot.held ? Promise.resolve(this.#slot.held.info) : this.#target.inspect();
  }
}
