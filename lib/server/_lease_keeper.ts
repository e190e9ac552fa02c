// Background renewal of one held lease. The lease is renewed every ttl/3;
// the holder is told it lost the lock (held.signal aborts) no later than the
// lease's end by our own clock unless a renewal was confirmed first — so
// the server, which revokes only at its own later end, never grants the
// name to someone else while this side still believes it holds it.

import type { Runtime, Timer } from "../runtime/mod.ts";
import { LockLostError } from "../errors.ts";

/**
 * Our end of a lease, on our monotonic clock. The server's end is later:
 * the server started the lease after we sent the request, and
 * `validUntil` is computed from the send time, minus a margin for clock rate
 * differences.
 */
export interface Lease {
  readonly name: string;
  readonly token: number;
  ttl: number;
  /** Monotonic ms (runtime.monotonic) until which the lease is surely ours. */
  validUntil: number;
  /** False once released or lost. */
  active: boolean;
}

/** The share of a lease kept back for clock rate differences between hosts. */
export const CLOCK_MARGIN = 0.01;

/** Our lease end for a lease of `ttl` ms that the server started no earlier than `since`. */
export function leaseEnd(since: number, ttl: number): number {
  return since + ttl * (1 - CLOCK_MARGIN);
}

/** What a keeper needs from the client. */
export interface KeeperHost {
  readonly runtime: Runtime;
  /** Renews; resolves true when the server confirmed (and `lease.validUntil` moved). */
  renew(lease: Lease): Promise<boolean>;
  /** Gives a lost lease up on the server too, if it still has it. */
  forget(lease: Lease): void;
}

/** Keeps one lease alive until it is released or lost. */
export class LeaseKeeper {
  readonly #host: KeeperHost;
  readonly #lease: Lease;
  readonly #controller = new AbortController();
  #renewTimer: Timer | null = null;
  #deadlineTimer: Timer | null = null;
  #stopped = false;

  constructor(host: KeeperHost, lease: Lease) {
    this.#host = host;
    this.#lease = lease;
    this.#scheduleRenewal();
    this.#armDeadline();
  }

  /** Aborted with a LockLostError when the lease is lost. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Stops renewing (the lease was released). */
  stop(): void {
    this.#stopped = true;
    this.#renewTimer?.clear();
    this.#deadlineTimer?.clear();
  }

  /** Declares the lease lost: aborts the signal and gives it up on the server. */
  lost(why: string): void {
    if (this.#stopped) return;
    this.stop();
    const lease = this.#lease;
    lease.active = false;
    this.#host.forget(lease);
    this.#controller.abort(new LockLostError(lease.name, why));
  }

  #scheduleRenewal(): void {
    const timer = this.#host.runtime.setTimer(() => this.#renew(), this.#lease.ttl / 3);
    timer.unref();
    this.#renewTimer = timer;
  }

  #armDeadline(): void {
    this.#deadlineTimer?.clear();
    const left = this.#lease.validUntil - this.#host.runtime.monotonic();
    const timer = this.#host.runtime.setTimer(
      () =>
        this.lost(
          `its ${this.#lease.ttl} ms lease ran out without a confirmed renewal (is the event loop blocked, or the server unreachable?)`,
        ),
      Math.max(0, left),
    );
    timer.unref();
    this.#deadlineTimer = timer;
  }

  async #renew(): Promise<void> {
    if (this.#stopped) return;
    let renewed = false;
    try {
      renewed = await this.#host.renew(this.#lease);
    } catch {
      renewed = false;
    }
    if (this.#stopped) return;
    if (!renewed) {
      this.lost(
        "the server no longer holds it for us (its lease expired or the connection was lost)",
      );
      return;
    }
    this.#armDeadline();
    this.#scheduleRenewal();
  }
}
