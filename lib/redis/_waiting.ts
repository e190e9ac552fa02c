// A waiter's place in a Redis lock's queue, kept between its tries: the
// owner id it waits as, its arrival place (kept when it renews), when Redis
// last confirmed it, and what a release told it by pub/sub — on a channel
// of its own client, so a release wakes no one else: `granted <owner>
// <token> <acquiredAt>` (the lock is this waiter's), or `free <owner> <ms>`
// (the lock was left free; this waiter's turn comes in <ms> ms).
//
// A grant heard by pub/sub is used without asking Redis again. That is safe
// because the grant was made after the last try that found this waiter
// still queued — that try read the token counter, and the grant's token is
// larger — so the key, set by the grant with PX <claim ms> (see claimMs),
// lives at least that long from when that try was *sent*: the holder's
// first lease counts from there, as it would from its own acquisition, and
// its first renewal sets the full ttl.

import type { Runtime, Timer } from "../runtime/mod.ts";
import type { LockInfo } from "../types.ts";
import type { RedisAdapter } from "./client_adapter.ts";
import { RESET, type Watch } from "./_release_listener.ts";

/** The longest time between two confirmations of a waiter's place, ms. */
export const MAX_REFRESH_MS = 100;
/** A place not confirmed for this many refresh intervals counts as dead. */
export const WINDOW_REFRESHES = 5;
const clientIds = new WeakMap<RedisAdapter, string>();

/** A random hex id of `adapter` in this process: its waiters hear on `<channel>:<id>`. */
export function clientIdOf(adapter: RedisAdapter): string {
  let id = clientIds.get(adapter);
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(8));
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    clientIds.set(adapter, id);
  }
  return id;
}

/**
 * How often a waiter confirms its place: every 100 ms, or a quarter of the
 * lease for very short ttls (a grant then still leaves most of the lease).
 */
export function refreshMs(lease: number): number {
  return Math.max(1, Math.min(MAX_REFRESH_MS, Math.floor(lease / 4)));
}

/**
 * How long a lock handed to a waiter lives before the new holder's first
 * renewal: four place windows (2 s for the usual 100 ms refresh), or the
 * ttl if shorter. A waiter killed after its last renewal can still be handed
 * the lock; it is free again this long after, not a ttl after.
 */
export function claimMs(ttl: number, refresh: number): number {
  return Math.min(ttl, refresh * WINDOW_REFRESHES * 4);
}

/** A grant announced on the channel: `granted <owner> <token> <acquiredAt>`. */
export interface HeardGrant {
  token: number;
  acquiredAt: number;
}

/** One acquisition's wait in the queue, from its first failed try to its end. */
export class Waiting {
  /** The owner id this acquisition waits (and will hold) as. */
  readonly owner: string;
  /** The channel's watch, once listening. */
  watch: Watch | null = null;
  /** The arrival place Redis gave ("" until queued), sent back on each renewal. */
  place = "";
  /** When the last try that left this waiter queued was sent (monotonic ms). */
  confirmedAt = -Infinity;
  /** The token counter that try read: a grant with a larger token came after it. */
  confirmedCounter = Infinity;
  #holder: LockInfo | (() => LockInfo | null) | null = null;
  /** Set by the target when it tries again, cleared by cancelWake. */
  retrying = false;
  /**
   * True after a try whose reply never came (a command timeout): Redis may
   * still have queued this owner, or given it the lock. A confirmed try
   * (or the lock taken) settles it; a waiter that gives up cancels.
   */
  unanswered = false;
  #confirmedLive = false;
  #grant: HeardGrant | null = null;
  /** When the lock, left free, becomes this waiter's to take (monotonic ms). */
  #turnAt = Infinity;
  #poke: (() => void) | null = null;
  #unlisten: (() => void) | null = null;
  // One timer for the whole wait, set for the next time a try is due; the
  // waiting loop's tries in between are answered without timers of their own.
  #timer: Timer | null = null;
  #timerAt = Infinity;
  #runtime: Runtime;
  #refresh: number;

  /**
   * @param owner The owner id to wait as.
   * @param runtime Timers and the monotonic clock.
   * @param refresh How often the place is confirmed, ms (see {@link refreshMs}).
   */
  constructor(owner: string, runtime: Runtime, refresh: number) {
    this.owner = owner;
    this.#runtime = runtime;
    this.#refresh = refresh;
  }

  /** Listens on `watch` from now on (before the try whose grant it must hear). */
  hear(watch: Watch): void {
    this.watch = watch;
    this.#unlisten = watch.listen((message) => this.#onMessage(message));
  }

  /** True while the subscription is live: every message published from now on is heard. */
  live(): boolean {
    return this.watch !== null && this.watch.seen() >= 0;
  }

  /** Called as a real try is sent: a "free" heard before it is now acted on. */
  trying(): void {
    this.#turnAt = Infinity;
  }

  /** The holder the last try found (read only when a wait ends without the lock). */
  get holder(): LockInfo | null {
    if (typeof this.#holder === "function") this.#holder = this.#holder();
    return this.#holder;
  }

  /**
   * Records a try, sent at `sentAt` (subscription `live` then), that left
   * this waiter queued; `holder` makes the holder's info when asked.
   */
  confirmed(
    sentAt: number,
    live: boolean,
    place: string,
    counter: number,
    holder: () => LockInfo | null,
  ): void {
    this.confirmedAt = sentAt;
    this.unanswered = false;
    this.#confirmedLive = live;
    this.place = place;
    this.confirmedCounter = counter;
    this.#holder = holder;
  }

  /**
   * Forgets the confirmation: the next try must ask Redis. Until a try is
   * confirmed again, no grant heard is taken up without asking either: a
   * try whose reply never came may run later and queue this owner again,
   * so a grant's token no longer dates it after the last grant to us.
   */
  unconfirm(): void {
    this.confirmedAt = -Infinity;
    this.confirmedCounter = Infinity;
    this.#confirmedLive = false;
  }

  /**
   * The grant heard for this owner, if it came after the last confirmed
   * try (else that try found the lock not ours: the grant is gone).
   */
  takeGrant(): HeardGrant | null {
    const grant = this.#grant;
    this.#grant = null;
    return grant && grant.token > this.confirmedCounter ? grant : null;
  }

  /**
   * True if the next try can be answered without Redis: the place was
   * confirmed less than a refresh interval ago while the subscription was
   * live, and nothing was heard since — so a grant would have been.
   */
  canWait(now: number): boolean {
    return this.place !== "" && this.#grant === null && now < this.#due() &&
      this.#confirmedLive && this.live();
  }

  /**
   * Resolves when this waiter should try again: at once if it has not
   * queued yet (its first try only asked), else when a grant is heard, its
   * turn at a free lock comes, the subscription goes live after an unheard
   * try, or the place is due for renewal.
   */
  wake(): { promise: Promise<void>; cancel(): void } {
    const promise = new Promise<void>((resolve) => {
      if (this.#grant || this.place === "") return resolve();
      this.#poke = resolve;
      if (!this.#confirmedLive || this.place === "") {
        this.watch?.ready.then((ok) => ok && resolve());
      }
      this.#arm();
    });
    return { promise, cancel: () => void (this.#poke = null) };
  }

  /** Stops listening, and the timer. */
  end(): void {
    this.#unlisten?.();
    this.#unlisten = null;
    this.watch?.leave();
    this.watch = null;
    this.#poke = null;
    this.#timer?.clear();
    this.#timer = null;
    this.#timerAt = Infinity;
  }

  /** When the next try is due: the place's renewal, or this waiter's turn at a free lock. */
  #due(): number {
    return Math.min(this.confirmedAt + this.#refresh, this.#turnAt);
  }

  #arm(): void {
    const at = this.#due();
    if (this.#timer && this.#timerAt === at) return;
    this.#timer?.clear();
    this.#timerAt = at;
    const runtime = this.#runtime;
    const timer = runtime.setTimer(() => {
      this.#timer = null;
      this.#timerAt = Infinity;
      this.#poke?.();
    }, Math.max(0, at - runtime.monotonic()));
    // Unref'd: the waiting loop's own timer keeps the process alive.
    timer.unref();
    this.#timer = timer;
  }

  #onMessage(message: string): void {
    if (message === RESET) {
      // Messages may have been missed: the next try asks Redis, and the one
      // after waits for the channel to be live again (see wake).
      this.#confirmedLive = false;
      this.#poke?.();
      return;
    }
    const [what, owner, a, b] = message.split(" ");
    if (owner !== this.owner) return;
    if (what === "granted") {
      this.#grant ??= { token: Number(a), acquiredAt: Number(b) };
      this.#poke?.();
    } else if (what === "free") {
      // Sent on every release until this waiter's turn: only the first
      // one moves the timer.
      const turnAt = this.#runtime.monotonic() + Math.max(0, Number(a));
      if (turnAt < this.#turnAt) {
        this.#turnAt = turnAt;
        if (this.#poke) this.#arm();
      }
    }
  }
}
