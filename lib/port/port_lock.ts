/**
 * `PortLock`: k3portlock's `Portlock(key, timeout, sleep_time)` for Deno, Bun
 * and Node, excluding Python processes that lock the same key.
 *
 * @module
 */

import { runtime } from "../runtime/mod.ts";
import type { HeldLock } from "../types.ts";
import { acquire } from "../_acquire.ts";
import { checkNumberOption, checkSignal, checkTimeout } from "../_backoff.ts";
import { GAVE_UP, raceUntil } from "../_race_until.ts";
import { LockAbortedError, LockTimeoutError } from "../errors.ts";
import type { LockTarget } from "../_kind.ts";
import { type HeldSlot, releaseFrom } from "../_held_slot.ts";
import { portTarget } from "./port_target.ts";
import { asyncDispose } from "../_async_dispose.ts";

/** Options of {@link PortLock}, in milliseconds (k3portlock takes seconds). */
export interface PortLockOptions {
  /** How long {@link PortLock.acquire} waits, in ms. Default 1000 (k3portlock's 1 s). */
  timeout?: number;
  /** The pause between two tries, in ms, ±20 % (jitter). Default 10 (k3portlock's 0.01 s). */
  sleepTime?: number;
}

/**
 * A lock held by binding an address derived from `key`: on Linux the abstract
 * unix socket `"\0/portlock/" + key`, elsewhere 2 of 3 TCP ports on
 * 127.0.0.1 — exactly as Python's k3portlock, so both exclude each other.
 * The OS frees the lock when the holder dies; no file is ever written, so
 * nothing is known about the holder beyond "held".
 *
 * @example Run a job once at a time, with Python k3portlock peers
 * ```ts
 * import { PortLock } from "jsr:@x/socketlock";
 * const lock = new PortLock("nightly-report", { timeout: 5_000 });
 * await lock.acquire();
 * try {
 *   console.log("working");
 * } finally {
 *   await lock.release();
 * }
 * ```
 */
export class PortLock implements AsyncDisposable {
  /** The lock's key. */
  readonly key: string;
  /** How long {@link PortLock.acquire} waits by default, in ms. */
  readonly timeout: number;
  /** The longest pause between two tries, in ms. */
  readonly sleepTime: number;
  #target: LockTarget;
  #slot: HeldSlot = { held: null };
  #pending: Promise<HeldLock | null> | null = null;

  /**
   * Creates a lock on `key`; nothing is bound until it is acquired.
   *
   * @param key Any text of at most 96 UTF-8 bytes (what a unix socket address holds in every runtime).
   * @param options `timeout` and `sleepTime`, in ms.
   * @throws {InvalidLockNameError} If the key is too long for a unix socket address.
   */
  constructor(key: string, options: PortLockOptions = {}) {
    checkTimeout(options.timeout);
    checkNumberOption(options.sleepTime, "sleepTime", 0);
    this.key = key;
    this.timeout = options.timeout ?? 1000;
    this.sleepTime = options.sleepTime ?? 10;
    this.#target = portTarget(runtime, key);
  }

  /** True while this object holds the lock (k3portlock's `has_locked()`). */
  get locked(): boolean {
    return this.#slot.held !== null;
  }

  /** The held lock (token, info), while this object holds it. */
  get held(): HeldLock | null {
    return this.#slot.held;
  }

  /**
   * Tries once to take the lock; never waits.
   *
   * @returns true if this object now holds the lock (also if it already did);
   *   false if it is held elsewhere, or an acquire() of this object is still waiting.
   */
  async tryAcquire(): Promise<boolean> {
    return (await this.#acquire(false)) !== null;
  }

  /**
   * Takes the lock, retrying until `timeout` ms pass. A waiter wakes as soon
   * as a holder of this library lets go; Python holders are polled every
   * `sleepTime` ms (±20 %). Does nothing if this object already holds it;
   * a call while another is waiting shares that one's outcome, within its own
   * timeout and signal.
   *
   * @param options `timeout` in ms (default: the constructor's), `signal` to cancel.
   * @throws {LockTimeoutError} If the lock stays held for `timeout` ms (k3portlock's `PortlockTimeout`).
   * @throws {LockAbortedError} If the signal aborts the wait.
   */
  async acquire(options: { timeout?: number; signal?: AbortSignal } = {}): Promise<void> {
    await this.#acquire(true, options.timeout ?? this.timeout, options.signal);
  }

  /** Unbinds the lock. Does nothing if this object does not hold it. */
  release(): Promise<void> {
    return releaseFrom(this.#slot);
  }

  /** Releases the lock at the end of an `await using` scope. */
  [asyncDispose](): Promise<void> {
    return this.release();
  }

  async #acquire(
    wait: boolean,
    timeout?: number,
    signal?: AbortSignal,
  ): Promise<HeldLock | null> {
    if (this.#slot.held) return this.#slot.held;
    // A call while another is under way joins it: queued behind this
    // object's own slot, it would wait for a release that never comes. It
    // keeps its own limits: a try never waits, and a wait ends at its own
    // timeout or abort.
    if (this.#pending) {
      if (!wait) return null;
      const limit = timeout ?? this.timeout;
      checkTimeout(limit);
      checkSignal(signal);
      const started = runtime.monotonic();
      const held = await raceUntil(
        runtime,
        this.#pending.catch(() => null),
        started + limit,
        signal,
      );
      if (held && held !== GAVE_UP) return held;
      if (signal?.aborted) throw new LockAbortedError(this.key, signal.reason);
      if (held === GAVE_UP) throw new LockTimeoutError(this.key, limit, null);
      // The other call failed: this one tries for what is left of its timeout.
      const left = Math.max(0, started + limit - runtime.monotonic());
      return this.#acquire(true, left, signal).catch((error) => {
        throw error instanceof LockTimeoutError
          ? new LockTimeoutError(this.key, limit, error.holder)
          : error;
      });
    }
    const pending = this.#take(wait, timeout, signal);
    this.#pending = pending;
    try {
      return await pending;
    } finally {
      if (this.#pending === pending) this.#pending = null;
    }
  }

  async #take(
    wait: boolean,
    timeout?: number,
    signal?: AbortSignal,
  ): Promise<HeldLock | null> {
    const result = await acquire({
      name: this.key,
      kind: "port",
      target: this.#target,
      runtime,
      wait,
      // acquire() treats an elapsed deadline as a timeout after one try.
      timeout: wait ? Math.max(0, timeout ?? this.timeout) : undefined,
      signal,
      retry: { minDelay: this.sleepTime, maxDelay: this.sleepTime, factor: 1, jitter: 0.2 },
    });
    this.#slot.held = result.held;
    return result.held;
  }
}
