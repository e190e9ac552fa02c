/**
 * The typed errors every kind raises. All are subclasses of {@link LockError},
 * and every message says what happened and what to do next.
 *
 * @module
 */

import type { LockInfo } from "./types.ts";
import { describeHolder } from "./_describe_holder.ts";

/**
 * The base class of every error this library raises.
 *
 * @example Tell lock errors from others
 * ```ts
 * import { LockError, tryLock } from "./../mod.ts";
 * try {
 *   await tryLock("../bad");
 * } catch (e) {
 *   console.log(e instanceof LockError); // true
 * }
 * ```
 */
export class LockError extends Error {
  /**
   * Creates a lock error.
   *
   * @param message What happened and what to do.
   * @param options The underlying cause, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * The lock is held by someone else and the caller asked not to wait.
 *
 * @example Report who holds a lock
 * ```ts
 * import { LockBusyError } from "./../mod.ts";
 * const e = new LockBusyError("nightly", null);
 * console.log(e.holder); // null: the holder could not be identified
 * ```
 */
export class LockBusyError extends LockError {
  /** The lock's name. */
  readonly lockName: string;
  /** What is known about the holder, or `null` if it could not be read. */
  readonly holder: LockInfo | null;
  /**
   * Creates a busy error.
   *
   * @param name The lock's name.
   * @param holder The holder's info, if known.
   */
  constructor(name: string, holder: LockInfo | null) {
    super(
      `Lock "${name}" is held ${describeHolder(holder)}. ` +
        `Wait with lock(name, { timeout }) or inspect it with "socketlock status ${name}".`,
    );
    this.lockName = name;
    this.holder = holder;
  }
}

/**
 * Waiting for a lock took longer than the given timeout.
 *
 * @example Catch a timeout
 * ```ts
 * import { LockTimeoutError } from "./../mod.ts";
 * console.log(new LockTimeoutError("x", 50, null).timeout); // 50
 * ```
 */
export class LockTimeoutError extends LockError {
  /** The lock's name. */
  readonly lockName: string;
  /** The timeout that ran out, in ms. */
  readonly timeout: number;
  /** The last holder seen, if known. */
  readonly holder: LockInfo | null;
  /**
   * Creates a timeout error.
   *
   * @param name The lock's name.
   * @param timeout The timeout in ms.
   * @param holder The last holder seen, if known.
   */
  constructor(name: string, timeout: number, holder: LockInfo | null) {
    super(
      `Timed out after ${timeout} ms waiting for lock "${name}", ${
        holder
          ? `held ${describeHolder(holder)}`
          : "whose holder could not be identified (or whose server did not answer)"
      }. Raise the timeout, or find out why the holder keeps it with "socketlock status ${name}".`,
    );
    this.lockName = name;
    this.timeout = timeout;
    this.holder = holder;
  }
}

/**
 * The wait for a lock was cancelled through its `AbortSignal`.
 *
 * @example Cancel a wait
 * ```ts
 * import { LockAbortedError } from "./../mod.ts";
 * console.log(new LockAbortedError("x").lockName); // "x"
 * ```
 */
export class LockAbortedError extends LockError {
  /** The lock's name. */
  readonly lockName: string;
  /**
   * Creates an aborted error.
   *
   * @param name The lock's name.
   * @param reason The signal's reason, if any.
   */
  constructor(name: string, reason?: unknown) {
    super(`Waiting for lock "${name}" was aborted by its signal.`, {
      cause: reason,
    });
    this.lockName = name;
  }
}

/**
 * A held lock was lost (its lease expired, its server went away, or it was
 * broken as stale). Work done under it may no longer be exclusive.
 *
 * @example React to a lost lock
 * ```ts
 * import { LockLostError } from "./../mod.ts";
 * const e = new LockLostError("x", "the lease expired");
 * console.log(e.message);
 * ```
 */
export class LockLostError extends LockError {
  /** The lock's name. */
  readonly lockName: string;
  /**
   * Creates a lost-lock error.
   *
   * @param name The lock's name.
   * @param why What happened to the lock.
   */
  constructor(name: string, why: string, options?: ErrorOptions) {
    super(
      `Lock "${name}" was lost: ${why}. Stop work that needs exclusivity and ` +
        `take the lock again; use held.token to fence writes.`,
      options,
    );
    this.lockName = name;
  }
}

/**
 * A peer (holder, lock server, Redis) answered something this library does
 * not understand, or the environment refused an operation.
 *
 * @example Report a protocol error
 * ```ts
 * import { LockProtocolError } from "./../mod.ts";
 * console.log(new LockProtocolError("bad reply").message);
 * ```
 */
export class LockProtocolError extends LockError {}

/**
 * A lock name cannot be used: empty, too long, or holding `/`, `\`, NUL,
 * control characters, or being `.`/`..`.
 *
 * @example Validate a name
 * ```ts
 * import { InvalidLockNameError } from "./../mod.ts";
 * console.log(new InvalidLockNameError("a/b", "it contains '/'").lockName);
 * ```
 */
export class InvalidLockNameError extends LockError {
  /** The rejected name. */
  readonly lockName: string;
  /**
   * Creates an invalid-name error.
   *
   * @param name The rejected name.
   * @param why Why it was rejected.
   * @param advice What to use instead (default: the rules every kind shares).
   */
  constructor(
    name: string,
    why: string,
    advice =
      `Use 1 to 200 bytes of printable text without "/", "\\" or NUL, e.g. "nightly-report".`,
  ) {
    const shown = name.length > 60 ? `${name.slice(0, 60)}…` : name;
    // JSON leaves DEL, C1 controls, line separators and lone surrogates raw;
    // an error message must not carry terminal escapes.
    const escaped = JSON.stringify(shown).replace(
      /[\u007f-\u009f\u2028\u2029]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
    super(`Invalid lock name ${escaped}: ${why}. ${advice}`);
    this.lockName = name;
  }
}

/**
 * The environment refused an operation the lock needs: a missing Deno
 * permission flag, or a lock directory that is unsafe to use.
 *
 * @example Name the missing flag
 * ```ts
 * import { LockPermissionError } from "./../mod.ts";
 * console.log(new LockPermissionError("run Deno with --allow-net=127.0.0.1").message);
 * ```
 */
export class LockPermissionError extends LockError {}
