/**
 * `RedisLock`: AppLocker's surface — `acquire`, `release`, `isMine`, `info`,
 * `duration`, `forceReleaseIfStale` — over your own Redis client, with
 * waiting, atomic renewal, loud loss and fencing tokens added.
 *
 * @module
 */

import { runtime } from "../runtime/mod.ts";
import type { HeldLock, LockInfo, RetryOptions } from "../types.ts";
import { type HeldSlot, releaseFrom, type SlotRequest, takeInto } from "../_held_slot.ts";
import { validateLockName } from "../names.ts";
import { adaptRedisClient, type RedisAdapter } from "./client_adapter.ts";
import { lockKeyFor } from "./key_layout.ts";
import { forceReleaseIfStale, inspectRedis, redisTarget, validateTtl } from "./redis_target.ts";
import { asyncDispose } from "../_async_dispose.ts";

/** Options of {@link RedisLock}. */
export interface RedisLockOptions {
  /**
   * How soon a crashed holder's lock frees itself, in ms (default 30 000).
   * While held, the lock is renewed every `ttl / 3`.
   */
  ttl?: number;
  /** The Redis key. Default `socketlock:<name>`; AppLocker's is `LOCK:<application>`. */
  key?: string;
  /**
   * Backoff between tries while waiting. A waiter queues in Redis and is
   * handed the lock by the release, so tries mostly cost nothing: Redis is
   * asked at most every 100 ms (to keep the waiter's place), or when no
   * pub/sub connection could be opened, or after a try that timed out.
   */
  retry?: RetryOptions;
}

/**
 * A lock on one Redis key, shared by every process that uses the same key
 * on the same Redis — the same lock as `lock(name, { redis: client })`.
 *
 * @example Guard a job across hosts
 * ```ts
 * import { Redis } from "npm:ioredis";
 * import { RedisLock } from "jsr:@x/socketlock";
 * const client = new Redis();
 * const lock = new RedisLock(client, "nightly-report", { ttl: 10_000 });
 * await lock.acquire({ timeout: 5_000 });
 * try {
 *   console.log(await lock.isMine(), lock.token); // true, the fencing token
 * } finally {
 *   await lock.release();
 *   await client.quit();
 * }
 * ```
 *
 * @example Use AppLocker's key and clear a holder that stopped renewing
 * ```ts
 * import { Redis } from "npm:ioredis";
 * import { RedisLock } from "jsr:@x/socketlock";
 * const client = new Redis();
 * const lock = new RedisLock(client, "billing", { key: "LOCK:billing" });
 * await lock.forceReleaseIfStale(30_000);
 * if (await lock.tryAcquire()) {
 *   console.log((await lock.info())?.host);
 *   await lock.release();
 * }
 * await client.quit();
 * ```
 */
export class RedisLock implements AsyncDisposable {
  /** The lock's name. */
  readonly name: string;
  /** The Redis key. */
  readonly key: string;
  /** The ttl in ms. */
  readonly ttl: number;
  #adapter: RedisAdapter;
  #slot: HeldSlot = { held: null };
  #request: SlotRequest;
  #heldSince = 0;

  /**
   * Creates a lock object; nothing is sent to Redis until it is used.
   *
   * @param client An ioredis client, a connected node-redis client, Bun's RedisClient, or a RedisAdapter.
   * @param name The lock's name: 1 to 200 bytes, no `/`, `\` or NUL.
   * @param options ttl, key, backoff.
   * @throws {InvalidLockNameError} If the name cannot be used.
   * @throws {LockError} If the client is not recognised, or the key or ttl is invalid.
   */
  constructor(client: unknown, name: string, options: RedisLockOptions = {}) {
    this.name = validateLockName(name);
    this.key = lockKeyFor(this.name, options.key);
    this.ttl = validateTtl(options.ttl);
    this.#adapter = adaptRedisClient(client);
    this.#request = {
      name: this.name,
      label: `RedisLock "${this.name}"`,
      kind: "redis",
      target: redisTarget(runtime, { adapter: this.#adapter, name, key: this.key, ttl: this.ttl }),
      runtime,
      retry: options.retry,
    };
  }

  /** The held lock (token, info, signal), while this object holds it. */
  get held(): HeldLock | null {
    return this.#slot.held;
  }

  /**
   * The fencing token of the current acquisition, or null when not held:
   * larger than every earlier token of this key, even across a restart of
   * Redis without persistence (tokens are the server's clock in µs, or one
   * more than the last).
   */
  get token(): number | null {
    return this.#slot.held ? this.#slot.held.token : null;
  }

  /** Aborted with a LockLostError if the lock is lost while held; null when not held. */
  get signal(): AbortSignal | null {
    return this.#slot.held ? this.#slot.held.signal : null;
  }

  /**
   * Tries once to take the lock; never waits (AppLocker's `acquire`).
   *
   * @returns true if this object now holds the lock.
   * @throws {LockError} If this object already holds it, or Redis fails.
   */
  async tryAcquire(): Promise<boolean> {
    return (await this.#take(false)) !== null;
  }

  /**
   * Takes the lock, waiting up to `timeout` ms (default: as long as it
   * takes). A waiter queues in Redis, in arrival order; a release hands the
   * lock to the first waiter and tells it by pub/sub. The waiter renews its
   * place every 100 ms, which also covers a notice it missed.
   *
   * @param options `timeout` in ms (0: try once), `signal` to cancel.
   * @throws {LockBusyError} If `timeout` is 0 and the lock is held.
   * @throws {LockTimeoutError} If the timeout runs out.
   * @throws {LockAbortedError} If the signal aborts the wait.
   * @throws {LockError} If this object already holds the lock, or Redis fails.
   */
  async acquire(options: { timeout?: number; signal?: AbortSignal } = {}): Promise<void> {
    await this.#take(true, options.timeout, options.signal);
  }

  /**
   * Releases the lock if this object holds it — by owner, so a lock that
   * expired and passed to someone else is left alone.
   */
  release(): Promise<void> {
    return releaseFrom(this.#slot);
  }

  /**
   * Asks Redis whether this object's acquisition still holds the key.
   *
   * @returns true if the stored owner is this object's.
   */
  async isMine(): Promise<boolean> {
    const held = this.#slot.held;
    // A lock whose loss was declared is not ours, whatever Redis still says.
    if (!held || held.signal.aborted) return false;
    const current = await inspectRedis(this.#adapter, this.name, this.key);
    return current !== null && current.owner === held.info.owner && !held.signal.aborted;
  }

  /**
   * The current holder as stored in Redis (anyone's): owner, acquiredAt,
   * pid, host, token, renewedAt, ttl, `expiresIn` ms and `waiters` (queued).
   *
   * @returns The holder's info, or null if the lock is free.
   */
  info(): Promise<LockInfo | null> {
    return inspectRedis(this.#adapter, this.name, this.key);
  }

  /**
   * How long this object has held the lock, in ms.
   *
   * @returns ms since acquisition, or null when not held.
   */
  duration(): number | null {
    return this.#slot.held ? runtime.monotonic() - this.#heldSince : null;
  }

  /**
   * Deletes the lock if its holder has not renewed it for more than
   * `staleMs` — judged atomically in Redis by the server's clock. A holder
   * that is still renewing is never robbed: the lock must also have gone
   * unrenewed for longer than the holder's own lease (two thirds of its
   * ttl), after which the holder has already seen its `signal` abort —
   * as long as nothing else shortens the key's expiry (see the README).
   * Values written by other tools are never deleted.
   *
   * @param staleMs How long without renewal makes a lock stale, in ms.
   * @returns true if a stale lock was deleted.
   */
  forceReleaseIfStale(staleMs: number): Promise<boolean> {
    return forceReleaseIfStale(this.#adapter, this.key, staleMs);
  }

  /** Releases the lock at the end of an `await using` scope. */
  [asyncDispose](): Promise<void> {
    return this.release();
  }

  async #take(wait: boolean, timeout?: number, signal?: AbortSignal): Promise<HeldLock | null> {
    const held = await takeInto(this.#slot, this.#request, wait, timeout, signal);
    this.#heldSince = runtime.monotonic();
    return held;
  }
}
