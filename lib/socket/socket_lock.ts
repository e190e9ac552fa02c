/**
 * `SocketLock`: Python socketlock's `acquire / try_acquire / release /
 * get_lock_info` surface, with waiting, safe stale breaking and a keyed
 * handshake added.
 *
 * @module
 */

import { runtime } from "../runtime/mod.ts";
import type { HeldLock, LockInfo, LockOptions } from "../types.ts";
import type { LockTarget } from "../_kind.ts";
import { type HeldSlot, releaseFrom, type SlotRequest, takeInto } from "../_held_slot.ts";
import { validateLockName } from "../names.ts";
import { resolveSocketSettings } from "./socket_settings.ts";
import { socketTarget } from "./socket_target.ts";
import { asyncDispose } from "../_async_dispose.ts";

/** Options of {@link SocketLock}: the socket kind's options of {@link LockOptions}. */
export type SocketLockOptions = Pick<
  LockOptions,
  "dir" | "signatureSeed" | "compat" | "maxAge" | "handshakeTimeout" | "retry"
>;

/**
 * A lock file naming a loopback port whose listener proves, by handshake,
 * that the holder is alive. The same lock as `lock(name, { kind: "socket" })`
 * with the same options.
 *
 * @example Run a job once at a time
 * ```ts
 * import { SocketLock } from "jsr:@x/socketlock";
 * const lock = new SocketLock("nightly-report");
 * await lock.acquire({ timeout: 5_000 });
 * try {
 *   console.log(`pid ${lock.pid} holds it; contenders check port ${lock.port}`);
 * } finally {
 *   await lock.release();
 * }
 * ```
 *
 * @example Share a lock with Python socketlock processes
 * ```ts
 * import { SocketLock } from "jsr:@x/socketlock";
 * const lock = new SocketLock("myapp", { compat: "socketlock" }); // /tmp/.myapp.lock
 * console.log(await lock.tryAcquire());
 * await lock.release();
 * ```
 */
export class SocketLock implements AsyncDisposable {
  /** The lock's name. */
  readonly name: string;
  #options: SocketLockOptions;
  #target: Promise<LockTarget> | null = null;
  #slot: HeldSlot = { held: null };
  #requestMade: SlotRequest | null = null;

  /**
   * Creates a lock object; nothing is touched until it is used.
   *
   * @param name The lock's name: 1 to 200 bytes, no `/`, `\` or NUL.
   * @param options Directory, key, compat mode, `maxAge`, `handshakeTimeout`, backoff.
   * @throws {InvalidLockNameError} If the name cannot be used.
   */
  constructor(name: string, options: SocketLockOptions = {}) {
    this.name = validateLockName(name);
    this.#options = { ...options };
  }

  /** This process's pid while this object holds the lock, else null. */
  get pid(): number | null {
    return this.#slot.held ? this.#slot.held.info.pid : null;
  }

  /** The port contenders verify this holder on, while held, else null. */
  get port(): number | null {
    return this.#slot.held ? this.#slot.held.info.port as number : null;
  }

  /** The held lock (token, info), while this object holds it. */
  get held(): HeldLock | null {
    return this.#slot.held;
  }

  /**
   * Tries once to take the lock, breaking a stale one on the way; never
   * waits for a live holder.
   *
   * @returns true if this object now holds the lock.
   * @throws {LockError} If this object already holds the lock.
   * @throws {LockPermissionError} If the lock directory is unsafe.
   */
  async tryAcquire(): Promise<boolean> {
    return (await takeInto(this.#slot, this.#request(), false)) !== null;
  }

  /**
   * Takes the lock, waiting up to `timeout` ms (default: as long as it
   * takes). A waiter stays connected to the holder and retries the moment
   * the holder lets go. `timeout: 0` fails at once if the lock is held.
   *
   * @param options `timeout` in ms, `signal` to cancel.
   * @throws {LockBusyError} If `timeout` is 0 and a live holder has the lock.
   * @throws {LockTimeoutError} If the timeout runs out.
   * @throws {LockAbortedError} If the signal aborts the wait.
   * @throws {LockError} If this object already holds the lock.
   */
  async acquire(options: { timeout?: number; signal?: AbortSignal } = {}): Promise<void> {
    await takeInto(this.#slot, this.#request(), true, options.timeout, options.signal);
  }

  /** Releases the lock. Does nothing if this object does not hold it. */
  release(): Promise<void> {
    return releaseFrom(this.#slot);
  }

  /**
   * Who holds the lock: this object's own info while it holds it, else the
   * verified holder's (pid, port, acquisition time), or null if the lock is
   * free or its file is stale.
   *
   * @returns The holder's info, or null.
   */
  async getLockInfo(): Promise<LockInfo | null> {
    if (this.#slot.held) return this.#slot.held.info;
    return await (await this.#getTarget()).inspect();
  }

  /** Releases the lock at the end of an `await using` scope. */
  [asyncDispose](): Promise<void> {
    return this.release();
  }

  #getTarget(): Promise<LockTarget> {
    return this.#target ??= resolveSocketSettings(runtime, this.name, this.#options)
      .then((settings) => socketTarget(runtime, settings))
      .catch((error) => {
        this.#target = null;
        throw error;
      });
  }

  #request(): SlotRequest {
    return this.#requestMade ??= {
      name: this.name,
      label: `SocketLock "${this.name}"`,
      kind: "socket",
      target: () => this.#getTarget(),
      runtime,
      retry: this.#options.retry,
    };
  }
}
