/**
 * Tells a local-kind holder that its lock is gone. Nothing in the protocols
 * takes a live holder's lock file or bid, but things outside them can: the
 * lock directory removed (a logout's cleanup of `$XDG_RUNTIME_DIR`, tmpfiles
 * cleaning /tmp, a user's `rm -rf`), the file deleted by hand, a socket-kind
 * `maxAge` break. The next contender then takes the lock, so the holder's
 * `held.signal` must abort.
 *
 * The check runs every {@link HELD_CHECK_MS} on an unref'd timer (a watch
 * would be quicker, but on Deno an open watch keeps the process alive). It
 * starts only when the holder first reads `held.signal`, and its first probe
 * waits a period too: acquisitions that never read the signal pay nothing,
 * and short ones that do (`lockManager` hands every callback the signal; the
 * CLI watches it) pay for a timer only.
 *
 * @module
 */

import type { Runtime, Timer } from "./runtime/mod.ts";
import { LockLostError } from "./errors.ts";

/** How often a holder that reads `held.signal` checks that its lock is still there, ms. */
export const HELD_CHECK_MS = 1_000;

/** What one probe of a held lock's own file found; "unknown" proves nothing (EACCES, EMFILE). */
export type HeldProbe = "held" | "gone" | "unknown";

/** A running check of one held lock. */
export interface HeldCheck {
  /** Aborted with a {@link LockLostError} once the lock is found gone. */
  readonly signal: AbortSignal;
  /** Stops checking (before a release: a file we remove is not a lost lock). Idempotent. */
  stop(): void;
  /** True once the lock was found gone; starts nothing (unlike reading `signal` on demand). */
  lostAlready(): boolean;
}

/**
 * Probes a held lock every {@link HELD_CHECK_MS} until stopped, and aborts
 * the signal with `why` the first time the probe finds it gone.
 *
 * @example Watch a file while holding
 * ```ts
 * import { checkHeld } from "./_held_check.ts";
 * import { runtime } from "./runtime/mod.ts";
 * const check = checkHeld(runtime, "job", () => Promise.resolve("held"), "it was removed");
 * check.signal.addEventListener("abort", () => console.log("lost"));
 * check.stop();
 * ```
 *
 * @param runtime The runtime adapter.
 * @param name The lock's name, for the error.
 * @param probe Looks whether the lock is still this holder's.
 * @param why Why it is lost, for the error.
 * @returns The running check.
 */
export function checkHeld(
  runtime: Runtime,
  name: string,
  probe: () => Promise<HeldProbe>,
  why: string,
): HeldCheck {
  const controller = new AbortController();
  let timer: Timer | null = null;
  let stopped = false;
  const schedule = () => {
    timer = runtime.setTimer(check, HELD_CHECK_MS);
    timer.unref();
  };
  const check = async () => {
    timer = null;
    const found = await probe().catch((): HeldProbe => "unknown");
    if (stopped) return;
    if (found !== "gone") return schedule();
    stopped = true;
    controller.abort(new LockLostError(name, why));
  };
  schedule();
  return {
    signal: controller.signal,
    lostAlready: () => controller.signal.aborted,
    stop() {
      stopped = true;
      timer?.clear();
      timer = null;
    },
  };
}

/**
 * A {@link HeldCheck} started only when its signal is first read (most
 * holders never read it), and never once stopped: a signal first read after
 * the release says nothing was lost, as the file or bid is gone by the
 * holder's own hand. A class, so every grant's shares one shape.
 *
 * @example Start checking only if the holder watches
 * ```ts
 * import { checkHeld, HeldCheckOnDemand } from "./_held_check.ts";
 * import { runtime } from "./runtime/mod.ts";
 * const check = new HeldCheckOnDemand(() =>
 *   checkHeld(runtime, "job", () => Promise.resolve("held"), "it was removed")
 * );
 * check.stop(); // released before anyone read the signal
 * console.log(check.signal.aborted); // false, and nothing runs
 * ```
 */
export class HeldCheckOnDemand implements HeldCheck {
  #start: () => HeldCheck;
  #check: HeldCheck | null = null;
  #stopped = false;

  /** @param start Starts the check, on the first read of `signal`. */
  constructor(start: () => HeldCheck) {
    this.#start = start;
  }

  /** The check's signal; reading it first starts the check (stopped at once if released). */
  get signal(): AbortSignal {
    if (!this.#check) {
      this.#check = this.#start();
      if (this.#stopped) this.#check.stop();
    }
    return this.#check.signal;
  }

  /** True if the check runs and found the lock gone; never starts it. */
  lostAlready(): boolean {
    return this.#check?.lostAlready() ?? false;
  }

  /** Stops the check if it runs, and keeps it from starting. Idempotent. */
  stop(): void {
    this.#stopped = true;
    this.#check?.stop();
  }
}
