// The waiting machinery shared by every kind: in-process FIFO first, then
// tries of the kind's mechanism with capped, jittered backoff, woken early
// when the kind can tell of a release; timeouts and AbortSignal throughout.

import type { Attempt, Grant, LockTarget } from "./_kind.ts";
import type { Runtime } from "./runtime/mod.ts";
import type { HeldLock, LockInfo, LockKind, RetryOptions } from "./types.ts";
import { backoff, checkRetryOptions, checkSignal, checkTimeout } from "./_backoff.ts";
import { timerAt } from "./_timer_at.ts";
import { GAVE_UP, raceUntil } from "./_race_until.ts";
import { localHolder, releaseLocal, setLocalHolder, tryLocal, waitLocal } from "./_local_mutex.ts";
import { LockAbortedError, LockTimeoutError } from "./errors.ts";
import { asyncDispose } from "./_async_dispose.ts";

/** What one acquisition needs. */
export interface AcquireRequest {
  name: string;
  kind: LockKind;
  target: LockTarget;
  runtime: Runtime;
  /** false: try once. */
  wait: boolean;
  /** ms; undefined waits forever. */
  timeout?: number;
  signal?: AbortSignal;
  retry?: RetryOptions;
}

/** Either the held lock, or who held it when we gave up without waiting. */
export type AcquireResult =
  | { held: HeldLock }
  | { held: null; holder: LockInfo | null };

const SELF_WAKING_KEEPALIVE_MS = 60_000;

/** Sleeps `ms`, returning early when `wake` resolves or `signal` aborts. */
function pause(
  runtime: Runtime,
  ms: number,
  wake: Promise<void> | undefined,
  signal: AbortSignal | undefined,
): Promise<void> {
  // Aborted while the try was under way: no "abort" event will come.
  if (signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = runtime.setTimer(done, Math.max(0, ms));
    function done() {
      timer.clear();
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
    wake?.then(done, done);
  });
}

// A class: every held lock shares one hidden class and the prototype's
// `signal` getter. The signal is made (or read from the kind) on first read:
// an AbortController per acquisition is a measurable share of the port
// kind's few microseconds. Kinds that cannot lose the lock get one that
// never aborts. (An object literal with a getter gave every held lock a
// hidden class of its own, see _lazy_wake.ts; one with `__proto__` and
// symbol keys instead took 10 times as long to make as this class: 195
// against 19 ns in Node 24, 164 against 15 in Deno.) Symbol keys, not
// private fields: the getter must work through a Proxy or an object made
// with Object.create(held), whose `this` is not the instance.
const GRANT = Symbol("grant");
const SIGNAL = Symbol("signal");

class Held {
  readonly name: string;
  readonly kind: LockKind;
  readonly token: number;
  readonly info: LockInfo;
  /** Its own, so that it works detached: `const { release } = held`. */
  readonly release: () => Promise<void>;
  readonly [asyncDispose]: () => Promise<void>;
  readonly [GRANT]: Grant;
  [SIGNAL]: AbortSignal | undefined = undefined;

  constructor(request: AcquireRequest, grant: Grant) {
    this.name = request.name;
    this.kind = request.kind;
    this.token = grant.token;
    this.info = grant.info;
    this[GRANT] = grant;
    this.release = releaseOnce(request.target.key, grant);
    this[asyncDispose] = this.release;
  }

  get signal(): AbortSignal {
    return this[SIGNAL] ??= this[GRANT].lost ?? new AbortController().signal;
  }
}

// The in-process slot passes on after the first attempt, failed or not: a
// caller who never retries must not block this process's other waiters
// (they then wait on the lock itself). A failed release (Redis or a file
// unreachable) may be called again; one that succeeded does nothing more.
function releaseOnce(key: string, grant: Grant): () => Promise<void> {
  let releasing: Promise<void> | null = null;
  let slotFreed = false;
  const freeSlot = () => {
    if (slotFreed) return;
    slotFreed = true;
    releaseLocal(key);
  };
  return () =>
    releasing ??= grant.release().then(freeSlot, (error) => {
      freeSlot();
      releasing = null;
      throw error;
    });
}

/** Waits for the in-process slot of the target (taken by another call), honouring timeout and signal. */
async function waitLocalSlot(
  request: AcquireRequest,
  deadline: number,
): Promise<void> {
  const { target, runtime, signal, name } = request;
  let timer: { clear(): void } | undefined;
  let onAbort: (() => void) | undefined;
  let timedOut = false;
  const cancel = new Promise<void>((resolve) => {
    if (Number.isFinite(deadline)) {
      timer = timerAt(runtime, () => deadline, () => {
        timedOut = true;
        resolve();
      });
    }
    onAbort = () => resolve();
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  try {
    await waitLocal(
      target.key,
      cancel,
      () =>
        timedOut
          ? new LockTimeoutError(name, request.timeout!, localHolder(target.key) ?? null)
          : new LockAbortedError(name, signal?.reason),
    );
  } finally {
    timer?.clear();
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * How long the last try, made once the deadline has come, may take before
 * the wait ends without it, ms.
 */
const LAST_TRY_MS = 100;

/**
 * Undoes a try the caller stopped waiting for, once it settles: resolves
 * when that is done. Until then the in-process slot stays taken, for the
 * try may still take the lock, and a kind may share its state between the
 * tries of one target (the Redis kind's owner id and queue place): the next
 * waiter must not try before this one's grant is released.
 */
function abandonTry(trying: Promise<Attempt>): Promise<void> {
  return trying.then(async (late) => {
    if (late.acquired) await late.grant.release().catch(() => {});
    // A kind's cancel may finish in a microtask queued here (the Redis
    // kind's does), which runs before this promise resolves.
    else late.cancelWake?.();
  }, () => {});
}

/**
 * Acquires `request.target`: returns the held lock, or (when not waiting)
 * the holder. Throws LockTimeoutError / LockAbortedError while waiting.
 */
export async function acquire(request: AcquireRequest): Promise<AcquireResult> {
  const { runtime, target, signal, name } = request;
  checkTimeout(request.timeout);
  checkRetryOptions(request.retry);
  checkSignal(signal);
  if (signal?.aborted) throw new LockAbortedError(name, signal.reason);
  const start = runtime.monotonic();
  const deadline = request.timeout === undefined ? Infinity : start + request.timeout;
  // The slot is usually free: no promise, no timer, no listener for that.
  if (!tryLocal(target.key)) {
    if (!request.wait) return { held: null, holder: localHolder(target.key) ?? null };
    await waitLocalSlot(request, deadline);
  }
  let nextDelay: (() => number) | null = null;
  let granted = false;
  // The last failed try: its holder is read (and, for some kinds, parsed)
  // only if the wait ends in a timeout.
  let failed: { holder: LockInfo | null } | null = null;
  let abandoned: Promise<void> | null = null;
  try {
    for (;;) {
      // Aborted while the slot was handed over, or during the last pause.
      if (signal?.aborted) throw new LockAbortedError(name, signal.reason);
      const now = runtime.monotonic();
      const willWait = request.wait && deadline > now;
      const trying = target.tryAcquire(willWait);
      // A single try (tryLock, timeout 0) is bounded by the kind's own
      // timeouts only; a plain lock() races nothing.
      const due = !request.wait || !request.timeout
        ? Infinity
        : willWait
        ? deadline
        : now + LAST_TRY_MS;
      let attempt = await raceUntil(runtime, trying, due, request.wait ? signal : undefined);
      if (attempt === GAVE_UP) {
        abandoned = abandonTry(trying);
        if (signal?.aborted) throw new LockAbortedError(name, signal.reason);
        throw target.unanswered?.() ??
          new LockTimeoutError(name, request.timeout!, failed?.holder ?? null);
      }
      // Lost before it was handed out: a signal aborted already would never
      // fire a listener the caller adds to it.
      if (attempt.acquired && attempt.grant.lostAlready?.()) {
        attempt.grant.release().catch(() => {});
        attempt = { acquired: false, holder: null };
      }
      if (attempt.acquired) {
        granted = true;
        const { grant } = attempt;
        setLocalHolder(target.key, grant);
        return { held: new Held(request, grant) };
      }
      failed = attempt;
      const left = deadline - runtime.monotonic();
      if (!request.wait || left <= 0) {
        attempt.cancelWake?.();
        if (!request.wait) return { held: null, holder: attempt.holder };
        throw new LockTimeoutError(name, request.timeout!, attempt.holder);
      }
      // A kind that wakes its waiter itself needs no polling: the timer then
      // only keeps the process alive (the kind's own timers do not).
      const delay = attempt.wakesItself && attempt.wake
        ? SELF_WAKING_KEEPALIVE_MS
        : (nextDelay ??= backoff(request.retry))();
      await pause(runtime, Math.min(delay, left), attempt.wake, signal);
      attempt.cancelWake?.();
    }
  } finally {
    // The slot passes to the HeldLock when granted; otherwise it is freed
    // exactly once here, whatever ended the wait (after an abandoned try
    // is undone).
    if (!granted) {
      if (abandoned) abandoned.then(() => releaseLocal(target.key));
      else releaseLocal(target.key);
    }
  }
}
