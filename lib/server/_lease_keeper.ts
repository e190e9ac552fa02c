// Background renewal of held leases. A lease is renewed every ttl/3; the
// holder is told it lost the lock (held.signal aborts) no later than the
// lease's end by our own clock unless a renewal was confirmed first — so
// the server, which revokes only at its own later end, never grants the
// name to someone else while this side still believes it holds it.

import type { Runtime, Timer } from "../runtime/mod.ts";
import { LockLostError } from "../errors.ts";
import { type Due, scheduleOf } from "../_schedule.ts";
import { timerAt } from "../_timer_at.ts";

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

/**
 * The share of a queued wait (timed by the server's clock) kept back for
 * clock rates: 100 ppm, twice a free-running quartz's drift. A wait may
 * last hours, so the ttl's 1 % would eat a whole lease after 16 minutes.
 */
export const WAIT_RATE_MARGIN = 1e-4;

/**
 * Our lease end for a lease of `ttl` ms that the server started no earlier
 * than `since`, plus `waited` ms by its clock (a queued acquire).
 */
export function leaseEnd(since: number, ttl: number, waited = 0): number {
  return since + waited * (1 - WAIT_RATE_MARGIN) + ttl * (1 - CLOCK_MARGIN);
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
  // On the runtime's shared renewal schedule, at ttl/3 after the last
  // grant, never after the lease's end: most leases are released before
  // their first renewal, and a timer per lease is a measurable share of an
  // acquire+release round trip.
  readonly #renewal: Due = { at: 0, run: () => this.#due(), prev: null, next: null };
  readonly #lease: Lease;
  // Made on first use: most leases are released without anyone reading it.
  #controller: AbortController | null = null;
  /** Set while a renewal is on its way: aborts at our lease end unless it is confirmed first. */
  #deadlineTimer: Timer | null = null;
  #stopped = false;

  constructor(host: KeeperHost, lease: Lease) {
    this.#host = host;
    this.#lease = lease;
    // Lost between its grant and now (the connection dropped while the
    // reply that granted it was being read): the holder must learn it at once.
    if (!lease.active) {
      this.revoke("the connection to the lock server closed, and the server released it");
      return;
    }
    this.#scheduleRenewal();
  }

  /** Aborted with a LockLostError when the lease is lost. */
  get signal(): AbortSignal {
    return (this.#controller ??= new AbortController()).signal;
  }

  /** Stops renewing (the lease was released). */
  stop(): void {
    this.#stopped = true;
    scheduleOf(this.#host.runtime).delete(this.#renewal);
    this.#deadlineTimer?.clear();
  }

  /** Declares the lease lost: aborts the signal and gives it up on the server. */
  lost(why: string): void {
    if (this.#stopped) return;
    this.stop();
    const lease = this.#lease;
    lease.active = false;
    this.#host.forget(lease);
    this.#abort(why);
  }

  /**
   * The lease was released by other code than its holder's: stops renewing
   * and aborts the signal, so the holder learns it no longer holds it.
   */
  revoke(why: string): void {
    this.stop();
    this.#abort(why);
  }

  #abort(why: string): void {
    (this.#controller ??= new AbortController()).abort(new LockLostError(this.#lease.name, why));
  }

  /** The lease was renewed by hand: its end, and so the next renewal, moved. */
  rescheduled(): void {
    if (this.#stopped) return;
    if (this.#deadlineTimer) this.#armDeadline(); // our own renewal is on its way
    else this.#scheduleRenewal();
  }

  /** The renewal is due (called by the schedule). */
  #due(): void {
    if (this.#stopped) return;
    // Late only if the event loop was blocked: past our lease end, the lock
    // counts as lost whatever a renewal sent now would say.
    if (this.#host.runtime.monotonic() >= this.#lease.validUntil) return this.#expired();
    this.#armDeadline();
    void this.#renew();
  }

  #scheduleRenewal(): void {
    // At a third of the ttl, or halfway through what is left if less is (a
    // grant after a very long wait): never at the lease end itself.
    const now = this.#host.runtime.monotonic();
    this.#renewal.at = Math.min(
      now + this.#lease.ttl / 3,
      now + Math.max(0, this.#lease.validUntil - now) / 2,
    );
    scheduleOf(this.#host.runtime).add(this.#renewal);
  }

  #expired(): void {
    this.lost(
      `its ${this.#lease.ttl} ms lease ran out without a confirmed renewal (is the event loop blocked, or the server unreachable?)`,
    );
  }

  #armDeadline(): void {
    this.#deadlineTimer?.clear();
    const timer = timerAt(this.#host.runtime, () => this.#lease.validUntil, () => this.#expired());
    timer.unref();
    this.#deadlineTimer = timer;
  }

  async #renew(): Promise<void> {
    let renewed: boolean;
    try {
      renewed = await this.#host.renew(this.#lease);
    } catch {
      // No answer in time, or a refusal that does not say the lease is gone:
      // it may still be ours. Try again before its end (halfway there); past
      // it, the next try finds it expired. The deadline timer is for a
      // renewal on its way only (see rescheduled). A closed connection loses
      // every lease on its own.
      if (this.#stopped) return;
      this.#deadlineTimer?.clear();
      this.#deadlineTimer = null;
      this.#scheduleRenewal();
      return;
    }
    if (this.#stopped) return;
    if (!renewed) {
      this.lost(
        "the server no longer holds it for us (its lease expired or the connection was lost)",
      );
      return;
    }
    this.#deadlineTimer?.clear();
    this.#deadlineTimer = null;
    this.#scheduleRenewal();
  }
}
