/**
 * Types shared by every lock kind: what a holder looks like, what a held lock
 * offers, and the options every `lock()` call takes.
 *
 * @module
 */

/** The lock mechanisms behind the one API (more kinds join as they land). */
export type LockKind = "folder";

/**
 * What is known about the holder of a lock.
 *
 * Every kind fills `kind`, `name`, `pid`, `host` and `acquiredAt`; kinds add
 * their own fields (the socket kind its `port`, the folder kind its `bid`).
 */
export interface LockInfo {
  /** The mechanism holding the lock. */
  kind: LockKind;
  /** The lock's name. */
  name: string;
  /** The holder's process id (0 when the kind cannot tell). */
  pid: number;
  /** The holder's host name ("" when the kind cannot tell). */
  host: string;
  /** When the lock was taken, in epoch milliseconds (0 when unknown). */
  acquiredAt: number;
  /** The fencing token of this acquisition, when known. */
  token?: number;
  /** Kind-specific details (ports, bid files, lease expiry, ...). */
  [detail: string]: unknown;
}

/** Capped exponential backoff with jitter, used while waiting for a lock. */
export interface RetryOptions {
  /** First delay between attempts, in ms. Default 1. */
  minDelay?: number;
  /** Largest delay between attempts, in ms. Default 100. */
  maxDelay?: number;
  /** Growth factor of the delay after each failed attempt. Default 2. */
  factor?: number;
  /** Fraction of each delay that is randomised (0..1). Default 0.5. */
  jitter?: number;
}

/** Options every kind understands. */
export interface LockOptions {
  /** Which mechanism to use. Default `"folder"`. */
  kind?: LockKind;
  /**
   * Directory holding local locks. Default: `$XDG_RUNTIME_DIR/socketlock`,
   * else `<temp dir>/socketlock-<uid>`, created 0700.
   */
  dir?: string;
  /** How long `lock()` waits, in ms. Default: forever. `0` means try once. */
  timeout?: number;
  /** Cancels a wait at once with `LockAbortedError`. */
  signal?: AbortSignal;
  /** Backoff between attempts while waiting. */
  retry?: RetryOptions;
}

/**
 * A lock that is held. Release it with `release()`, or let `await using`
 * release it at scope exit.
 */
export interface HeldLock extends AsyncDisposable {
  /** The lock's name. */
  readonly name: string;
  /** The mechanism holding it. */
  readonly kind: LockKind;
  /**
   * The fencing token: larger for every later acquisition of the same name,
   * so a resource can reject writes from a holder that lost its lock.
   */
  readonly token: number;
  /** Who holds it: this process, with kind-specific details. */
  readonly info: LockInfo;
  /** Aborted (with a `LockLostError`) if the lock is lost while held. */
  readonly signal: AbortSignal;
  /** Releases the lock. Calling it again does nothing. */
  release(): Promise<void>;
}
