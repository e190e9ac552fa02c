/**
 * The heartbeat of a held Redis lock: renews it every `ttl / 3` in the
 * background and keeps the holder's own view of its lease, so that
 * `held.signal` aborts with {@link LockLostError} no later than the lease's
 * end by this process's clock — even if no timer had the chance to run, as
 * in a process that was paused past its lease.
 *
 * The lease a holder relies on after each confirmed renewal is two thirds of
 * the ttl, counted from when the renewal was *sent* (so before Redis applied
 * it), less an allowance for clock drift. `forceReleaseIfStale` breaks a lock
 * only after the same lease has passed since its last renewal by the server's
 * clock, so by then the holder has already given the lock up.
 *
 * @module
 */

import type { Runtime, Timer } from "../runtime/mod.ts";
import { LockLostError } from "../errors.ts";
import type { Grant } from "../_kind.ts";
import type { LockInfo } from "../types.ts";
import { type Due, scheduleOf } from "../_schedule.ts";
import { timerAt } from "../_timer_at.ts";

/** The share of the ttl a holder relies on after each confirmed renewal. */
export const LEASE_FRACTION = 2 / 3;
/** Allowed drift between clocks' rates, as in the Redlock algorithm. */
export const CLOCK_DRIFT_FACTOR = 0.01;
/** A fixed allowance for timer and clock granularity, in ms. */
export const CLOCK_DRIFT_MS = 2;

/** The lease (ms) stored with a lock taken for `ttl` ms. */
export function leaseFor(ttl: number): number {
  return Math.floor(ttl * LEASE_FRACTION);
}

/** How long after sending a confirmed request the holder may rely on the lock. */
export function safeLeaseMs(lease: number): number {
  return lease * (1 - CLOCK_DRIFT_FACTOR) - CLOCK_DRIFT_MS;
}

/** What one renewal found. */
export type RenewOutcome = "renewed" | "gone";

/** What a heartbeat needs. */
export interface HeartbeatOptions {
  /** The runtime (timers and the monotonic clock). */
  runtime: Runtime;
  /** The lock's name, for the LockLostError. */
  name: string;
  /** The lock's ttl in ms. */
  ttl: number;
  /** The lease in ms (see {@link leaseFor}). */
  lease: number;
  /** When the acquisition that granted the lock was sent (monotonic ms). */
  sentAt: number;
  /**
   * The lease the grant itself gives, if shorter than `lease`: a lock handed
   * over lives only its claim time until the first renewal, which comes early.
   */
  firstLease?: number;
  /** Renews once. Rejects on a failure that may pass (network, timeouts). */
  renew(): Promise<RenewOutcome>;
  /** Called once when the lock is lost, e.g. to delete what is left of it. */
  onLost(): void;
}

type AbortedGetter = (this: AbortSignal) => boolean;
type ReasonGetter = (this: AbortSignal) => unknown;
const signalProto = AbortSignal.prototype;
const nativeAborted = Object.getOwnPropertyDescriptor(signalProto, "aborted")!.get as AbortedGetter;
const nativeReason = Object.getOwnPropertyDescriptor(signalProto, "reason")!.get as ReasonGetter;
const nativeThrowIfAborted = signalProto.throwIfAborted;

const beats = new WeakMap<AbortSignal, Heartbeat>();

// The prototype of every held lock's signal: an AbortSignal whose readers
// first compare the clock with the lease's end, so a reader never sees a
// lease that ran out as still held, whatever order timers fire in. (A shared
// prototype costs a fraction of per-signal accessors, on every runtime.)
const guardedSignalProto: AbortSignal = Object.create(signalProto, {
  aborted: {
    configurable: true,
    get(this: AbortSignal) {
      beats.get(this)?.check();
      return nativeAborted.call(this);
    },
  },
  reason: {
    configurable: true,
    get(this: AbortSignal) {
      beats.get(this)?.check();
      return nativeReason.call(this);
    },
  },
  throwIfAborted: {
    configurable: true,
    writable: true,
    value(this: AbortSignal) {
      beats.get(this)?.check();
      return nativeThrowIfAborted.call(this);
    },
  },
});

/**
 * Renews a held lock in the background and aborts {@link Heartbeat.signal}
 * when the lock is lost. Its timers never keep the process alive, and its
 * failures never surface as unhandled rejections.
 */
export class Heartbeat {
  #options: HeartbeatOptions;
  // Made on first use: most locks are released without anyone reading their
  // signal, and a controller per acquisition (with its entry in `beats`)
  // costs a Redis lock's client about a third of its CPU under load.
  #controller: AbortController | null = null;
  #deadline: number;
  #interval: number;
  #stopped = false;
  // Off once a release is under way; the deadline still holds until it answers.
  #renewing = true;
  #lastError: unknown = undefined;
  #nextBeat: Due = { at: 0, run: () => void this.#beat(), prev: null, next: null };
  #deadlineTimer: Timer | null = null;
  /** The lease behind the deadline: the grant's own until a renewal is confirmed. */
  #runningLease: { ms: number; since: string };

  /**
   * Starts renewing.
   *
   * @param options Timing, the renewal and the loss callback.
   */
  constructor(options: HeartbeatOptions) {
    this.#options = options;
    this.#interval = Math.max(1, options.ttl / 3);
    const firstLease = options.firstLease ?? options.lease;
    this.#deadline = options.sentAt + safeLeaseMs(firstLease);
    this.#runningLease = options.firstLease === undefined
      ? { ms: options.lease, since: "after it was taken, before its first renewal" }
      : { ms: firstLease, since: "after the lock was handed over, before its first renewal" };
    // The first beat comes before the deadline; the deadline timer is armed
    // when a renewal is under way, so a quiet holder runs one timer.
    this.#scheduleBeat(options.sentAt + Math.min(this.#interval, firstLease / 2));
  }

  /**
   * Aborted with a {@link LockLostError} when the lock is lost. Reading
   * `aborted` (or `reason`, or calling `throwIfAborted()`) first compares the
   * clock with the lease's end, so a process resumed after a pause sees the
   * loss before it does any work.
   */
  get signal(): AbortSignal {
    return this.#control().signal;
  }

  /** The lease's end, monotonic ms. */
  get deadline(): number {
    return this.#deadline;
  }

  /**
   * Stops renewing but keeps the deadline: while a release is under way,
   * the lease may still run out, and Redis give the key to another.
   */
  stopRenewing(): void {
    this.#renewing = false;
    scheduleOf(this.#options.runtime).delete(this.#nextBeat);
    this.#watchDeadline();
  }

  /** Stops renewing and watching (the lock was released). The signal is left as it is. */
  stop(): void {
    this.#stopped = true;
    scheduleOf(this.#options.runtime).delete(this.#nextBeat);
    this.#deadlineTimer?.clear();
  }

  /** Aborts the signal now if the lease has run out. */
  check(): void {
    if (this.#stopped) return;
    if (this.#options.runtime.monotonic() >= this.#deadline) {
      const cause = this.#lastError;
      this.lose(
        cause === undefined
          ? `no renewal was confirmed before its lease ran out (${
            Math.round(this.#runningLease.ms)
          } ms ${this.#runningLease.since}; the process may have been paused or Redis is slow)`
          : `Redis could not be reached to renew it before its lease ran out (${describe(cause)})`,
        cause,
      );
    }
  }

  /** Aborts the signal now with a {@link LockLostError} saying `why`, and stops. */
  lose(why: string, cause?: unknown): void {
    if (this.#stopped) return;
    this.stop();
    this.#control().abort(
      new LockLostError(this.#options.name, why, cause === undefined ? undefined : { cause }),
    );
    try {
      this.#options.onLost();
    } catch {
      // Cleanup is best effort; the loss has been reported.
    }
  }

  #control(): AbortController {
    if (!this.#controller) {
      this.#controller = new AbortController();
      Object.setPrototypeOf(this.#controller.signal, guardedSignalProto);
      beats.set(this.#controller.signal, this);
      if (!this.#renewing) this.#watchDeadline();
    }
    return this.#controller;
  }

  // A deadline timer only for a signal someone holds: a released lock's
  // signal that nobody read is checked when first read.
  #watchDeadline(): void {
    if (!this.#stopped && this.#controller && !this.#deadlineTimer) this.#armDeadline();
  }

  #armDeadline(): void {
    this.#deadlineTimer?.clear();
    // Not before the deadline, early timers or not: a renewal that never
    // settles would leave the signal unaborted for good.
    const timer = timerAt(this.#options.runtime, () => this.#deadline, () => {
      this.#deadlineTimer = null;
      this.check();
    });
    timer.unref();
    this.#deadlineTimer = timer;
  }

  #scheduleBeat(at: number): void {
    if (this.#stopped) return;
    if (!this.#renewing) return this.#watchDeadline();
    // On the shared, unref'd schedule: a lock released before its first
    // renewal never sets a timer of its own.
    this.#nextBeat.at = at;
    scheduleOf(this.#options.runtime).add(this.#nextBeat);
  }

  async #beat(): Promise<void> {
    this.check();
    if (this.#stopped) return;
    const { runtime } = this.#options;
    if (!this.#deadlineTimer) this.#armDeadline();
    const sentAt = runtime.monotonic();
    let outcome: RenewOutcome;
    try {
      outcome = await this.#options.renew();
    } catch (error) {
      if (this.#stopped) return;
      // Maybe passing (a reconnect): retry soon while the lease lasts (a
      // hand-off's short claim lease too); the deadline timer reports the
      // loss if it runs out first.
      this.#lastError = error;
      const now = runtime.monotonic();
      const left = Math.max(1, (this.#deadline - now) / 3);
      this.#scheduleBeat(now + Math.min(this.#interval / 4, 1_000, left));
      return;
    }
    if (this.#stopped) return;
    if (outcome === "gone") {
      this.lose(
        "it was no longer held by this owner when the heartbeat came to renew it " +
          "(it expired, or was force-released as stale)",
      );
      return;
    }
    // A renewal confirmed after the lease ran out does not revive it: the
    // loss may already have been observed.
    this.check();
    if (this.#stopped) return;
    this.#lastError = undefined;
    this.#deadline = Math.max(this.#deadline, sentAt + safeLeaseMs(this.#options.lease));
    this.#runningLease = { ms: this.#options.lease, since: "after the last one" };
    this.#deadlineTimer?.clear();
    this.#deadlineTimer = null;
    this.#scheduleBeat(sentAt + this.#interval);
  }
}

/** What {@link heartbeatGrant} needs beyond the heartbeat's own options. */
export interface HeartbeatGrantOptions extends Omit<HeartbeatOptions, "onLost"> {
  /** The fencing token. */
  token: number;
  /** The holder's info. */
  info: LockInfo;
  /**
   * Deletes the lock (compare-and-delete by owner). Resolves false if it was
   * no longer ours (its key gone or another's): the lock had been lost.
   */
  release(): Promise<boolean | void>;
}

/**
 * A held lock kept alive by a {@link Heartbeat}: `lost` aborts on loss, and
 * what is left of a lost lock is deleted in the background (Redis may be
 * unreachable, and release() must not wait for it); release() stops the
 * renewals and deletes the lock, and if that fails aborts `lost` at once.
 */
export function heartbeatGrant(options: HeartbeatGrantOptions): Grant {
  return new HeartbeatGrant(options);
}

// A class, whose getter every grant shares: a getter written in an object
// literal gives each grant a hidden class of its own (see ../_lazy_wake.ts).
class HeartbeatGrant implements Grant {
  readonly token: number;
  readonly info: LockInfo;
  #options: HeartbeatGrantOptions;
  #heartbeat: Heartbeat;
  #lost = false;
  #releasing = false;

  constructor(options: HeartbeatGrantOptions) {
    this.token = options.token;
    this.info = options.info;
    this.#options = options;
    this.#heartbeat = new Heartbeat({
      runtime: options.runtime,
      name: options.name,
      ttl: options.ttl,
      lease: options.lease,
      sentAt: options.sentAt,
      firstLease: options.firstLease,
      renew: options.renew,
      onLost: () => {
        // A release under way answers for itself (and a failed one may be retried).
        if (this.#releasing) return;
        this.#lost = true;
        options.release().catch(() => {});
      },
    });
  }

  // Read only if the holder reads held.signal: made then.
  get lost(): AbortSignal {
    return this.#heartbeat.signal;
  }

  lostAlready(): boolean {
    return this.#lost;
  }

  // HeldLock.release() calls this once, and again only after it failed.
  async release(): Promise<void> {
    // A lost lock's leftover is being deleted already (onLost).
    if (this.#lost) return this.#heartbeat.stop();
    this.#releasing = true;
    this.#heartbeat.stopRenewing();
    try {
      const ours = await this.#options.release();
      // A lease that ran out before the release (a process paused past it),
      // or a key no longer ours, was a lost lock: the signal says so, read
      // now or later, even though nothing is left to free.
      this.#heartbeat.check();
      if (ours === false) {
        this.#heartbeat.lose(
          "it was no longer held by this owner when released (its key had expired or been " +
            "deleted), so another caller may have held it",
        );
      }
    } catch (error) {
      // The RELEASE may have run with its reply lost, or not, and nothing
      // renews the lock now: whose it is can no longer be known.
      this.#heartbeat.lose(
        "its release() failed, so Redis may already have freed it for another caller " +
          "(see the cause); call release() again to free it if it is still held",
        error,
      );
      throw error;
    } finally {
      this.#releasing = false;
    }
    this.#heartbeat.stop();
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
