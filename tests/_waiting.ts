// Waiting in tests without a stopwatch that flakes under load: for a state
// (polled, with a deadline), or for a lock that only a wake-up can bring.
import type { LockKind, RetryOptions } from "../mod.ts";

/** A backoff whose first retry comes after a minute: within a test, never. */
export const NO_POLLING: RetryOptions = { minDelay: 60_000, maxDelay: 60_000, jitter: 0 };

/**
 * Runs `wait` as a waiter that only a wake-up can bring the lock: its backoff
 * would first try again after a minute, and it gives up after `ms` by an
 * abort, which (unlike a timeout) makes no last try at its end.
 */
export async function wokenWithin<T>(
  ms: number,
  wait: (options: { retry: RetryOptions; signal: AbortSignal }) => Promise<T>,
): Promise<T> {
  const giveUp = new AbortController();
  const timer = setTimeout(() => giveUp.abort(new Error(`not woken within ${ms} ms`)), ms);
  try {
    return await wait({ retry: NO_POLLING, signal: giveUp.signal });
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` every 10 ms for at most `ms`; true once it held. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  ms = 5_000,
): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return false;
}

/**
 * Polls `isFree` until a released bind (a port lock, a raw listener) is free.
 * It can stay busy for a moment after its close settled: a child process that
 * another thread of this process is starting (another test file's worker,
 * under `deno test --parallel`) holds a copy of every socket from its fork to
 * its exec. Measured: 20 % of immediate re-binds failed in Deno while a worker
 * spawned `true` in a loop.
 */
export function freedAfterForks(isFree: () => boolean | Promise<boolean>): Promise<boolean> {
  return eventually(isFree, 5_000);
}

/**
 * Calls `take` until it returns something, as {@link freedAfterForks} polls:
 * for taking a lock or a port just given back. Its result, or null after 5 s.
 */
export async function takenAfterForks<T>(take: () => Promise<T | null>): Promise<T | null> {
  let taken = null as T | null; // set in the callback
  await freedAfterForks(async () => (taken = await take()) !== null);
  return taken;
}

/**
 * Checks `isFree` right after a release of `kind`: polled as
 * {@link freedAfterForks} for the port kind, whose bind a forked child can
 * keep a moment, and once for the other kinds.
 */
export async function freedAfterRelease(
  kind: LockKind,
  isFree: () => boolean | Promise<boolean>,
): Promise<boolean> {
  return kind === "port" ? await freedAfterForks(isFree) : await isFree();
}

/** Calls `take` right after a release of `kind`, as {@link freedAfterRelease} checks. */
export function takenAfterRelease<T>(
  kind: LockKind,
  take: () => Promise<T | null>,
): Promise<T | null> {
  return kind === "port" ? takenAfterForks(take) : take();
}

/**
 * Binds again (`bind`, e.g. a lock server's serve()) on a port whose
 * listener was just closed, as {@link takenAfterForks} takes a freed port: a
 * bind that fails with EADDRINUSE is tried again for up to 5 s, since a
 * child that another thread of this process is starting can keep a copy of
 * the closed listener a moment. Any other error, or EADDRINUSE for 5 s, is
 * thrown.
 */
export async function reboundAfterForks<T>(bind: () => Promise<T>): Promise<T> {
  let busy: unknown = null;
  const bound = await takenAfterForks(() =>
    bind().catch((error: unknown) => {
      if ((error as { code?: unknown } | null)?.code !== "EADDRINUSE") throw error;
      busy = error;
      return null;
    })
  );
  if (bound === null) throw busy ?? new Error("bind did not succeed within 5 s");
  return bound;
}
