/**
 * The one API over every kind: `lock`, `tryLock`, `withLock`, `inspect`.
 *
 * @module
 */

import { runtime } from "./runtime/mod.ts";
import type { HeldLock, LockInfo, LockOptions } from "./types.ts";
import type { KindDriver } from "./_kind.ts";
import { acquire } from "./_acquire.ts";
import { driverFor, kindOf } from "./_kinds.ts";
import { localHolder } from "./_local_mutex.ts";
import { releaseAfter } from "./_release_after.ts";
import { LockBusyError, LockError } from "./errors.ts";
import { validateLockName } from "./names.ts";

// The kind's driver for a call, its name and options checked. (Opening its
// target is left to the caller: one async function fewer per lock.)
function driverOf(name: string, options: LockOptions): KindDriver {
  validateLockName(name);
  if (typeof options !== "object" || options === null) {
    throw new LockError(`Lock options must be an object, got ${String(options)}.`);
  }
  return driverFor(kindOf(options));
}

/**
 * Takes the lock `name`, waiting up to `options.timeout` ms (default: as long
 * as it takes). Two calls in one process exclude each other in FIFO order,
 * just as two processes do.
 *
 * @example Run a job only once at a time across processes
 * ```ts
 * import { lock } from "jsr:@x/socketlock";
 * const held = await lock("nightly-report", { timeout: 5_000 });
 * try {
 *   console.log("token", held.token);
 * } finally {
 *   await held.release();
 * }
 * ```
 *
 * @param name The lock's name: 1 to 200 bytes, no `/`, `\` or NUL.
 * @param options Kind, directory, timeout, signal, backoff.
 * @returns The held lock.
 * @throws {InvalidLockNameError} If the name cannot be used.
 * @throws {LockBusyError} If `timeout` is 0 and the lock is held.
 * @throws {LockTimeoutError} If the timeout runs out.
 * @throws {LockAbortedError} If `options.signal` aborts the wait.
 * @throws {LockPermissionError} If the lock directory is unsafe or a Deno permission is missing.
 * @throws {LockError} If a lock server or Redis cannot be reached (also when the timeout runs out
 *   while a lock server cannot be).
 */
export async function lock(name: string, options: LockOptions = {}): Promise<HeldLock> {
  const driver = driverOf(name, options);
  const target = await driver.open(name, options, runtime);
  const result = await acquire({
    name,
    kind: driver.kind,
    target,
    runtime,
    wait: options.timeout !== 0,
    timeout: options.timeout,
    signal: options.signal,
    retry: options.retry,
  });
  if (!result.held) throw new LockBusyError(name, result.holder);
  return result.held;
}

/**
 * Takes the lock `name` if it is free right now; never waits for a holder
 * to let go (checking a silent socket holder takes up to its handshake
 * timeout, 1 s by default).
 *
 * @example Skip work another process is already doing
 * ```ts
 * import { tryLock } from "jsr:@x/socketlock";
 * const held = await tryLock("cache-rebuild");
 * if (held) {
 *   try { console.log("rebuilding"); } finally { await held.release(); }
 * } else {
 *   console.log("someone else is rebuilding");
 * }
 * ```
 *
 * @param name The lock's name.
 * @param options Kind and directory (timeout is ignored).
 * @returns The held lock, or `null` if another holder has it.
 * @throws {InvalidLockNameError} If the name cannot be used.
 */
export async function tryLock(
  name: string,
  options: LockOptions = {},
): Promise<HeldLock | null> {
  const driver = driverOf(name, options);
  const target = await driver.open(name, options, runtime);
  const result = await acquire({
    name,
    kind: driver.kind,
    target,
    runtime,
    wait: false,
    signal: options.signal,
  });
  return result.held;
}

/**
 * Runs `fn` while holding the lock `name`, releasing it however `fn` ends.
 *
 * @example Serialise a read-modify-write
 * ```ts
 * import { withLock } from "jsr:@x/socketlock";
 * const total = await withLock("counter", { timeout: 1_000 }, async (held) => {
 *   return held.token;
 * });
 * console.log(total);
 * ```
 *
 * @param name The lock's name.
 * @param options As for {@link lock}.
 * @param fn The critical section; it receives the held lock.
 * @returns What `fn` returns.
 * @throws Whatever {@link lock} or `fn` throws.
 */
export async function withLock<T>(
  name: string,
  options: LockOptions,
  fn: (held: HeldLock) => T | Promise<T>,
): Promise<T> {
  // Checked before waiting: a mistake must not surface only once the lock is ours.
  if (typeof fn !== "function") {
    throw new LockError(
      "withLock(name, options, fn) needs the critical section as its third argument " +
        '(pass {} as options for the defaults), e.g. withLock("job", {}, async (held) => ...).',
    );
  }
  const held = await lock(name, options);
  return await releaseAfter(held, () => fn(held));
}

/**
 * Tells who holds the lock `name`, without taking it.
 *
 * @example Show the holder
 * ```ts
 * import { inspect } from "jsr:@x/socketlock";
 * const holder = await inspect("nightly-report");
 * console.log(holder ? `held by pid ${holder.pid}` : "free");
 * ```
 *
 * @param name The lock's name.
 * @param options Kind and directory.
 * @returns The holder's info, or `null` if the lock is free.
 * @throws {InvalidLockNameError} If the name cannot be used.
 */
export async function inspect(
  name: string,
  options: LockOptions = {},
): Promise<LockInfo | null> {
  const target = await driverOf(name, options).open(name, options, runtime);
  return localHolder(target.key) ?? await target.inspect();
}
