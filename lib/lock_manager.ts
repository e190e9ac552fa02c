/**
 * A lock manager with the Web Locks API's shape (`navigator.locks`):
 * `request(name, [options,] callback)` and `query()`, over any kind, so code
 * written for one browser tab works across processes and hosts.
 *
 * @module
 */

import { runtime } from "./runtime/mod.ts";
import type { HeldLock, LockOptions } from "./types.ts";
import { LockAbortedError, LockError } from "./errors.ts";
import { lock, tryLock } from "./lock.ts";
import { releaseAfter } from "./_release_after.ts";

/** What a granted request's callback receives, as in the Web Locks API. */
export interface WebLock {
  /** The lock's name. */
  readonly name: string;
  /** Always `"exclusive"`: the kinds here have no shared mode. */
  readonly mode: "exclusive";
  /** The fencing token of this acquisition (not in the Web Locks API). */
  readonly token: number;
  /**
   * Aborted if the lock is lost while the callback runs: a lease that ran out
   * (server, Redis), or a lock file, folder or bid removed from under it
   * (socket, folder).
   */
  readonly signal: AbortSignal;
}

/** The options of {@link WebLockManager.request}. */
export interface WebLockRequestOptions {
  /** Only `"exclusive"` is supported; `"shared"` is refused with a `LockError`. */
  mode?: "exclusive" | "shared";
  /** Do not wait: call back with `null` if the lock is held. */
  ifAvailable?: boolean;
  /** Refused with a `LockError`: taking a lock from another process is never safe. */
  steal?: boolean;
  /**
   * Aborts the wait: the request rejects with the signal's reason, as the
   * Web Locks API's does. Not with `ifAvailable`, which never waits.
   */
  signal?: AbortSignal;
}

/** One entry of {@link WebLockManager.query}. */
export interface WebLockSnapshotEntry {
  /** The lock's name. */
  name: string;
  /** Always `"exclusive"`. */
  mode: "exclusive";
  /** This process, as `"<pid>"`. */
  clientId: string;
}

/** What {@link WebLockManager.query} reports: this manager's requests. */
export interface WebLockSnapshot {
  /** Requests whose callback is running. */
  held: WebLockSnapshotEntry[];
  /** Requests still waiting for their lock. */
  pending: WebLockSnapshotEntry[];
}

/** The Web Locks API's `LockManager`, over one kind's options. */
export interface WebLockManager {
  /** Runs `callback` while holding `name`; resolves with its result. */
  request<T>(name: string, callback: (lock: WebLock | null) => T | Promise<T>): Promise<T>;
  /** Runs `callback` while holding `name` (or with `null`, see `ifAvailable`). */
  request<T>(
    name: string,
    options: WebLockRequestOptions,
    callback: (lock: WebLock | null) => T | Promise<T>,
  ): Promise<T>;
  /** The requests of this manager that hold or wait, as `navigator.locks.query()` reports. */
  query(): Promise<WebLockSnapshot>;
}

/**
 * Makes a lock manager with the Web Locks API's shape over `options` (kind,
 * directory, server, Redis client...). Only exclusive locks exist here; a
 * `steal` would take a lock from a live process, so it is refused.
 *
 * @example Port code written for navigator.locks
 * ```ts
 * import { lockManager } from "jsr:@x/socketlock";
 * const locks = lockManager();
 * const total = await locks.request("ledger", async (lock) => {
 *   console.log(`holding ${lock?.name} with token ${lock?.token}`);
 *   return 42;
 * });
 * console.log(total); // 42
 * ```
 *
 * @param options Options for every request: `kind`, `dir`, `server`, `redis`, `timeout`...
 * @returns The manager.
 */
export function lockManager(options: LockOptions = {}): WebLockManager {
  if (typeof options !== "object" || options === null) {
    throw new LockError(`lockManager options must be an object, got ${String(options)}.`);
  }
  const held = new Set<WebLockSnapshotEntry>();
  const pending = new Set<WebLockSnapshotEntry>();
  const clientId = String(runtime.pid);

  async function request<T>(
    name: string,
    optionsOrCallback: WebLockRequestOptions | ((lock: WebLock | null) => T | Promise<T>),
    maybeCallback?: (lock: WebLock | null) => T | Promise<T>,
  ): Promise<T> {
    const [request, callback] = typeof optionsOrCallback === "function"
      ? [{} as WebLockRequestOptions, optionsOrCallback]
      : [optionsOrCallback ?? {}, maybeCallback];
    if (typeof callback !== "function") {
      throw new TypeError("request(name, [options,] callback): the callback is missing");
    }
    refuseUnsupported(request);
    const entry: WebLockSnapshotEntry = { name, mode: "exclusive", clientId };
    pending.add(entry);
    let heldLock: HeldLock | null;
    const signal = request.signal ?? options.signal;
    try {
      heldLock = request.ifAvailable
        ? await tryLock(name, { ...options, signal })
        : await lock(name, { ...options, signal });
    } catch (error) {
      // navigator.locks rejects an aborted request with the signal's reason
      // (an AbortError DOMException by default): code checking for it ports.
      if (error instanceof LockAbortedError && signal?.aborted) throw signal.reason;
      throw error;
    } finally {
      pending.delete(entry);
    }
    if (!heldLock) return await callback(null);
    held.add(entry);
    const webLock: WebLock = {
      name,
      mode: "exclusive",
      token: heldLock.token,
      signal: heldLock.signal,
    };
    return await releaseAfter(heldLock, async () => {
      try {
        return await callback(webLock);
      } finally {
        // Out of query()'s held list before the release, as a Web lock is.
        held.delete(entry);
      }
    });
  }

  return {
    request: request as WebLockManager["request"],
    query: () => Promise.resolve({ held: [...held], pending: [...pending] }),
  };
}

function refuseUnsupported(request: WebLockRequestOptions): void {
  if (request.mode !== undefined && request.mode !== "exclusive") {
    throw new LockError(
      `Lock mode "${request.mode}" is not supported: every kind here is exclusive. ` +
        `Leave mode out (or use "exclusive").`,
    );
  }
  if (request.ifAvailable && request.signal) {
    throw new LockError(
      "ifAvailable with a signal is refused, as the Web Locks API refuses it: an ifAvailable " +
        "request never waits, so there is nothing to abort. Drop the signal.",
    );
  }
  if (request.steal) {
    throw new LockError(
      "steal is not supported: it would take the lock from a live holder in another process. " +
        "Wait with a timeout instead, or find out who holds it with inspect().",
    );
  }
}
