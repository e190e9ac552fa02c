/**
 * The lock server's state: which owner holds each name, who waits for it in
 * FIFO order, when leases and waits run out, and the fencing token of each
 * grant. Pure logic driven by an injected clock, so every interleaving can
 * be tested without a socket.
 *
 * Safety rests on one rule: a name has at most one lease at a time, and a
 * lease is removed from the table (revoked, its owner told) before the name
 * passes to the next waiter — whether it ends by release, by its owner's
 * connection closing, or by expiry.
 *
 * @module
 */

import { DeadlineHeap, type HeapItem } from "./_deadline_heap.ts";
import { FencingTokens } from "../_fencing_tokens.ts";

/** The time sources a {@link LockTable} runs on. */
export interface TableClock {
  /** Monotonic milliseconds: leases and waits are measured on it. */
  now(): number;
  /** Wall-clock epoch milliseconds: for `acquiredAt` and fencing tokens. */
  wallNow(): number;
  /** Calls `fn` after `ms`; the table never needs more than one timer. */
  setTimer(fn: () => void, ms: number): { clear(): void; unref(): void };
}

/** Who an owner is, as shown to others in busy replies and `STATUS`. */
export interface OwnerInfo {
  /** The owner's process id, 0 when unknown. */
  pid: number;
  /** The owner's host name, "" when unknown. */
  host: string;
  /** An id for logs: a connection number or a distlockd client id. */
  client: string;
  /** The client's isolate (main thread or worker), when it said so in HELLO. */
  isolate?: string;
}

/** A held lock: one per name at most. */
export interface Lease extends HeapItem {
  readonly kind: "lease";
  readonly name: string;
  readonly owner: Owner;
  readonly token: number;
  /** The lease length in ms; a renewal may change it. */
  ttl: number;
  /** Wall-clock epoch ms of the grant. */
  readonly acquiredAt: number;
  /** False once released, expired or dropped. */
  active: boolean;
}

/** What the table tells a waiter. Called at most once, never re-entrantly. */
export interface WaiterHandler {
  /** The name is now held by the waiter's owner. */
  granted(lease: Lease, waitedMs: number): void;
  /** The wait ran out; `holder` holds the name. */
  timedOut(holder: Lease | null): void;
}

/** An owner's queued request for a name. */
export interface Waiter extends HeapItem {
  readonly kind: "waiter";
  readonly name: string;
  readonly owner: Owner;
  readonly ttl: number;
  /** Monotonic ms at which it was queued. */
  readonly queuedAt: number;
  readonly handler: WaiterHandler;
  prev: Waiter | null;
  next: Waiter | null;
  /** False once granted, timed out or cancelled. */
  active: boolean;
}

/**
 * Something that holds and waits for locks: one connection of our protocol,
 * or one distlockd client id. Dropping it releases everything it holds.
 */
export class Owner {
  /** Who it is. */
  info: OwnerInfo;
  /** Its leases. */
  readonly leases: Set<Lease> = new Set();
  /** Its queued waits. */
  readonly waiters: Set<Waiter> = new Set();
  /** Told when one of its leases expires (revoked before anyone else is granted it). */
  onLost: (lease: Lease) => void;

  /**
   * Creates an owner.
   *
   * @param info Who it is.
   * @param onLost Called when one of its leases expires.
   */
  constructor(info: OwnerInfo, onLost: (lease: Lease) => void = () => {}) {
    this.info = info;
    this.onLost = onLost;
  }
}

/** What an acquire did at once. */
export type AcquireOutcome =
  | { status: "granted"; lease: Lease }
  | { status: "busy"; holder: Lease }
  /** Free, but grants are held back (see {@link LockTable.holdGrants}), and it was a try. */
  | { status: "withheld" }
  | { status: "queued"; waiter: Waiter; position: number };

interface Entry {
  holder: Lease | null;
  head: Waiter | null;
  tail: Waiter | null;
  waiting: number;
}

/** The longest a timer is set for; Node fires longer timeouts at once. */
const MAX_TIMER_MS = 2 ** 30;

/**
 * Names → holder, FIFO waiters, leases and tokens.
 *
 * @example Grant, queue, release
 * ```ts
 * import { LockTable, Owner } from "./lock_table.ts";
 * const table = new LockTable({
 *   now: () => performance.now(),
 *   wallNow: () => Date.now(),
 *   setTimer: (fn, ms) => {
 *     const id = setTimeout(fn, ms);
 *     return { clear: () => clearTimeout(id), unref: () => {} };
 *   },
 * });
 * const a = new Owner({ pid: 1, host: "a", client: "1" });
 * const b = new Owner({ pid: 2, host: "b", client: "2" });
 * const first = table.acquire("job", a, 10_000, 0);
 * const second = table.acquire("job", b, 10_000, 5_000, {
 *   granted: (lease) => console.log("b got token", lease.token),
 *   timedOut: () => console.log("b gave up"),
 * });
 * console.log(first.status, second.status); // granted queued
 * table.release("job", a);
 * table.close();
 * ```
 */
export class LockTable {
  #clock: TableClock;
  #tokens: FencingTokens;
  #entries = new Map<string, Entry>();
  #heap = new DeadlineHeap<Lease | Waiter>();
  #timer: { clear(): void } | null = null;
  #timerAt = Infinity;
  #held = 0;
  #waiting = 0;
  #closed = false;
  /** True while grants are held back; cleared only by {@link LockTable.#graceTimer}. */
  #holding = false;
  /** Monotonic ms at which grants resume, while {@link LockTable.#holding}. */
  #holdUntil = 0;
  #graceTimer: { clear(): void } | null = null;

  /**
   * Creates an empty table.
   *
   * @param clock Monotonic time, wall time and a timer.
   * @param tokens The fencing token source (default: one on `clock.wallNow`).
   */
  constructor(clock: TableClock, tokens?: FencingTokens) {
    this.#clock = clock;
    this.#tokens = tokens ?? new FencingTokens(() => clock.wallNow());
  }

  /** Names held right now. */
  get held(): number {
    return this.#held;
  }

  /** Waits queued right now. */
  get waiting(): number {
    return this.#waiting;
  }

  /** Names with a holder or a waiter (the table's size). */
  get names(): number {
    return this.#entries.size;
  }

  /** True while grants are held back (see {@link LockTable.holdGrants}). */
  get holdingGrants(): boolean {
    return this.#holding;
  }

  /** Ms until grants resume after {@link LockTable.holdGrants}; 0 when they are not held back. */
  get graceLeft(): number {
    // At least 1 while held back: the end may have come, the timer not yet.
    return this.#holding ? Math.max(1, Math.ceil(this.#holdUntil - this.#clock.now())) : 0;
  }

  /**
   * Grants nothing for `ms` from now: an acquire with a wait is queued (and
   * may time out) as usual, one without is answered busy with no holder.
   * When the time is up, each name goes to its first waiter, in FIFO order.
   * A later end than one already set extends it; an earlier one changes
   * nothing.
   *
   * @param ms How long to hold grants back, in ms (0: not at all).
   */
  holdGrants(ms: number): void {
    if (this.#closed || !(ms > 0)) return;
    const until = this.#clock.now() + ms;
    if (this.#holding && until <= this.#holdUntil) return;
    this.#holding = true;
    this.#holdUntil = until;
    this.#graceTimer?.clear();
    this.#armGrace();
  }

  /**
   * Takes `name` for `owner` if it is free; else queues the owner for up to
   * `wait` ms (`Infinity`: no limit), or reports the holder if `wait` is 0.
   * An owner that holds `name` and asks again queues behind itself.
   *
   * @param name The lock's name.
   * @param owner Who asks.
   * @param ttl The lease length in ms.
   * @param wait How long to queue, in ms.
   * @param handler Told of the grant or the timeout, when queued.
   * @returns What happened at once.
   */
  acquire(
    name: string,
    owner: Owner,
    ttl: number,
    wait: number,
    handler?: WaiterHandler,
  ): AcquireOutcome {
    let entry = this.#entries.get(name);
    if (!entry) {
      entry = { holder: null, head: null, tail: null, waiting: 0 };
      this.#entries.set(name, entry);
    }
    if (!entry.holder && !this.#holding) {
      return { status: "granted", lease: this.#grant(entry, name, owner, ttl) };
    }
    if (!(wait > 0) || !handler) {
      if (entry.holder) return { status: "busy", holder: entry.holder };
      this.#forgetIfIdle(name); // held back: the entry may be empty
      return { status: "withheld" };
    }
    const now = this.#clock.now();
    const waiter: Waiter = {
      kind: "waiter",
      name,
      owner,
      ttl,
      queuedAt: now,
      handler,
      prev: entry.tail,
      next: null,
      active: true,
      deadline: now + wait,
      heapIndex: -1,
    };
    if (entry.tail) entry.tail.next = waiter;
    else entry.head = waiter;
    entry.tail = waiter;
    entry.waiting++;
    this.#waiting++;
    owner.waiters.add(waiter);
    if (Number.isFinite(waiter.deadline)) {
      this.#heap.push(waiter);
      this.#arm();
    }
    return { status: "queued", waiter, position: entry.waiting };
  }

  /**
   * Releases `name` if `owner` holds it (and, when given, with `token`), and
   * grants it to the next waiter at once.
   *
   * @returns true if the lease was released.
   */
  release(name: string, owner: Owner, token?: number): boolean {
    const lease = this.holderOf(name, owner, token);
    if (!lease) return false;
    this.#end(lease);
    return true;
  }

  /**
   * Extends the lease on `name` held by `owner` to `ttl` ms from now.
   *
   * @returns The renewed lease, or null if `owner` does not hold it (any more).
   */
  renew(name: string, owner: Owner, ttl: number, token?: number): Lease | null {
    const lease = this.holderOf(name, owner, token);
    if (!lease) return null;
    lease.ttl = ttl;
    this.#heap.update(lease, this.#clock.now() + ttl);
    this.#arm();
    return lease;
  }

  /** Withdraws a queued wait without telling its handler. */
  cancel(waiter: Waiter): boolean {
    // Closed: the entries are gone, and connections closing at shutdown undo nothing.
    if (this.#closed || !waiter.active) return false;
    this.#unqueue(waiter);
    this.#forgetIfIdle(waiter.name);
    return true;
  }

  /**
   * Releases everything `owner` holds and withdraws its waits: its
   * connection is gone. Waiters of the released names are granted at once.
   *
   * @returns How many leases were released.
   */
  drop(owner: Owner): number {
    if (this.#closed) return 0;
    for (const waiter of [...owner.waiters]) this.cancel(waiter);
    const leases = [...owner.leases];
    for (const lease of leases) this.#end(lease);
    return leases.length;
  }

  /** The lease on `name`, if any (held by `owner` with `token`, when given). */
  holderOf(name: string, owner?: Owner, token?: number): Lease | null {
    const lease = this.#entries.get(name)?.holder ?? null;
    if (!lease) return null;
    if (owner && lease.owner !== owner) return null;
    if (token !== undefined && lease.token !== token) return null;
    return lease;
  }

  /** How many owners wait for `name`. */
  queueLength(name: string): number {
    return this.#entries.get(name)?.waiting ?? 0;
  }

  /** Ms until the lease ends, by the table's clock. */
  remaining(lease: Lease): number {
    return Math.max(0, lease.deadline - this.#clock.now());
  }

  /** Stops the timer and forgets every lock; no handler is called. */
  close(): void {
    this.#closed = true;
    this.#timer?.clear();
    this.#timer = null;
    this.#graceTimer?.clear();
    this.#graceTimer = null;
    this.#entries.clear();
  }

  #grant(entry: Entry, name: string, owner: Owner, ttl: number): Lease {
    const lease: Lease = {
      kind: "lease",
      name,
      owner,
      token: this.#tokens.next(),
      ttl,
      acquiredAt: this.#clock.wallNow(),
      active: true,
      deadline: this.#clock.now() + ttl,
      heapIndex: -1,
    };
    entry.holder = lease;
    owner.leases.add(lease);
    this.#held++;
    this.#heap.push(lease);
    this.#arm();
    return lease;
  }

  /** Revokes `lease`, then hands its name to the next waiter. */
  #end(lease: Lease): void {
    const entry = this.#entries.get(lease.name);
    if (!lease.active || !entry || entry.holder !== lease) return;
    lease.active = false;
    entry.holder = null;
    lease.owner.leases.delete(lease);
    this.#held--;
    this.#heap.remove(lease);
    this.#handOver(entry, lease.name);
  }

  #handOver(entry: Entry, name: string): void {
    const next = entry.head;
    if (!next) {
      this.#entries.delete(name);
      return;
    }
    if (this.#holding) return; // granted when the hold ends
    this.#unqueue(next);
    const lease = this.#grant(entry, name, next.owner, next.ttl);
    next.handler.granted(lease, Math.max(0, this.#clock.now() - next.queuedAt));
  }

  /** Drops the entry of a name nobody holds or waits for: memory stays bounded. */
  #forgetIfIdle(name: string): void {
    const entry = this.#entries.get(name);
    if (entry && !entry.holder && entry.waiting === 0) this.#entries.delete(name);
  }

  #unqueue(waiter: Waiter): void {
    if (!waiter.active) return;
    waiter.active = false;
    const entry = this.#entries.get(waiter.name)!;
    if (waiter.prev) waiter.prev.next = waiter.next;
    else entry.head = waiter.next;
    if (waiter.next) waiter.next.prev = waiter.prev;
    else entry.tail = waiter.prev;
    waiter.prev = waiter.next = null;
    entry.waiting--;
    this.#waiting--;
    waiter.owner.waiters.delete(waiter);
    this.#heap.remove(waiter);
  }

  /**
   * Ends the hold at its time, never before: a timer that fires early (or
   * one cut to the longest a timer may be set for) is set again for the rest.
   */
  #armGrace(): void {
    const left = Math.ceil(this.#holdUntil - this.#clock.now());
    if (left > 0) {
      const timer = this.#clock.setTimer(() => this.#armGrace(), Math.min(MAX_TIMER_MS, left));
      timer.unref();
      this.#graceTimer = timer;
      return;
    }
    this.#graceTimer = null;
    this.#holding = false;
    // Every name waited for is free (nothing was granted): each goes to its
    // first waiter. A snapshot, as a grant's handler may change the table.
    for (const [name, entry] of [...this.#entries]) {
      if (this.#closed) return;
      if (this.#entries.get(name) === entry && !entry.holder && entry.head) {
        this.#handOver(entry, name);
      }
    }
  }

  /** Keeps one timer set for the earliest deadline. */
  #arm(): void {
    const first = this.#heap.peek();
    if (this.#closed || !first) return;
    // A timer set for earlier than the first deadline fires, finds nothing
    // due and re-arms; only an earlier deadline needs a new timer now.
    if (this.#timer && this.#timerAt <= first.deadline) return;
    this.#timer?.clear();
    const delay = Math.min(
      MAX_TIMER_MS,
      Math.max(0, Math.ceil(first.deadline - this.#clock.now())),
    );
    this.#timerAt = first.deadline;
    const timer = this.#clock.setTimer(() => this.#expire(), delay);
    timer.unref();
    this.#timer = timer;
  }

  #expire(): void {
    this.#timer = null;
    this.#timerAt = Infinity;
    const now = this.#clock.now();
    for (let item = this.#heap.peek(); item && item.deadline <= now; item = this.#heap.peek()) {
      if (item.kind === "lease") {
        const entry = this.#entries.get(item.name)!;
        // Revoke first: the table no longer names the old owner when the
        // next waiter is granted below.
        item.active = false;
        entry.holder = null;
        item.owner.leases.delete(item);
        this.#held--;
        this.#heap.remove(item);
        item.owner.onLost(item);
        if (!this.#closed) this.#handOver(entry, item.name);
      } else {
        const holder = this.#entries.get(item.name)?.holder ?? null;
        this.cancel(item);
        item.handler.timedOut(holder);
      }
    }
    this.#arm();
  }
}
