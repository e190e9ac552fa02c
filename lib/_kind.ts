// The interface every lock kind implements. The generic machinery (in-process
// FIFO, waiting with backoff, timeouts, abort, HeldLock) lives in _acquire.ts;
// a kind only knows how to try once, how to release, and how to look.

import type { LockInfo, LockKind, LockOptions } from "./types.ts";
import type { Runtime } from "./runtime/mod.ts";

/** A successful acquisition. */
export interface Grant {
  /** The fencing token of this acquisition. */
  token: number;
  /** The holder's info (this process). */
  info: LockInfo;
  /**
   * Gives the lock up. Called once (the held lock memoizes it), and again
   * only after it failed: the caller's retry.
   */
  release(): Promise<void>;
  /**
   * Aborted (reason: LockLostError) if the kind notices the lock is lost.
   * Read at most once, and only if the holder reads `held.signal`: a kind
   * may make it in a getter.
   */
  readonly lost?: AbortSignal;
  /**
   * Whether the lock is known to be lost already, without making `lost` or
   * starting what it would start: a grant lost before it is handed out (its
   * connection closed meanwhile) is given back and counts as a failed try,
   * and a lost in-process holder is not named as the holder. A kind with
   * `lost` has it too.
   */
  lostAlready?(): boolean;
}

/** The outcome of one try. */
export type Attempt =
  | { acquired: true; grant: Grant }
  | {
    acquired: false;
    /** The holder, when it could be identified. */
    holder: LockInfo | null;
    /**
     * Resolves when the holder lets go (a kind that can be told of a release
     * returns it), so a waiter retries at once instead of polling.
     */
    wake?: Promise<void>;
    /**
     * True if `wake` also resolves whenever the kind wants another try (a
     * Redis waiter's place is due for renewal): the waiting loop then tries
     * only when woken, instead of polling with backoff as well.
     */
    wakesItself?: boolean;
    /** Drops whatever `wake` holds open, if the waiter stops waiting. */
    cancelWake?: () => void;
  };

/** One named lock of one kind, ready to be tried. */
export interface LockTarget {
  /** Identity within this process: two targets with one key exclude each other in FIFO order. */
  readonly key: string;
  /**
   * Tries once, never waiting for the holder. `willWait` (default true):
   * whether the caller waits if this try finds the lock held — false for a
   * tryLock(), which a kind must then not queue.
   */
  tryAcquire(willWait?: boolean): Promise<Attempt>;
  /** The current holder's info, or null if free. */
  inspect(): Promise<LockInfo | null>;
  /**
   * Why a try still has no answer when the caller's time runs out, if the
   * kind knows a better reason than "timed out" (a lock server it cannot
   * reach): thrown instead of a `LockTimeoutError`, which would say the
   * lock was held.
   */
  unanswered?(): Error | null;
}

/** Builds targets for one kind. */
export interface KindDriver {
  readonly kind: LockKind;
  /** Resolves `name` + options to a target; validates kind-specific options. */
  open(name: string, options: LockOptions, runtime: Runtime): Promise<LockTarget>;
}
