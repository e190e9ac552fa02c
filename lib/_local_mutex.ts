// In-process exclusion: two lock("x") calls in one process queue FIFO here
// before either touches the cross-process mechanism, so they exclude each
// other like two processes do, and the order is fair.

import type { LockInfo } from "./types.ts";
import type { Grant } from "./_kind.ts";
import { StableMap } from "./_stable_map.ts";

interface Waiter {
  grant(): void;
}

interface Slot {
  /** The in-process holder's grant, once it has one. */
  holder: Grant | null;
  queue: Waiter[];
}

// A key is taken and freed once per lock/release: see _stable_map.ts.
const slots = new StableMap<string, Slot>();

/** The info of the in-process holder of `key`, if any. */
export function localHolder(key: string): LockInfo | null | undefined {
  const holder = slots.get(key)?.holder;
  // A lost lock is no holder to report: another process may hold it now.
  // Asked without reading `lost`, which would start a kind's checks.
  return holder && (holder.lostAlready?.() ? null : holder.info);
}

/** Takes `key` at once if free; returns false if held in this process. */
export function tryLocal(key: string): boolean {
  if (slots.has(key)) return false;
  slots.set(key, { holder: null, queue: [] });
  return true;
}

/**
 * Waits for `key` in FIFO order. `cancel` resolves when the caller gives up
 * (timeout or abort); the promise then rejects with `cancelReason()`.
 */
export function waitLocal(
  key: string,
  cancel: Promise<unknown>,
  cancelReason: () => unknown,
): Promise<void> {
  if (tryLocal(key)) return Promise.resolve();
  const slot = slots.get(key)!;
  return new Promise<void>((resolve, reject) => {
    let done = false;
    const waiter: Waiter = {
      grant() {
        done = true;
        resolve();
      },
    };
    slot.queue.push(waiter);
    cancel.then(() => {
      if (done) return;
      done = true;
      const at = slot.queue.indexOf(waiter);
      if (at >= 0) slot.queue.splice(at, 1);
      reject(cancelReason());
    });
  });
}

/**
 * Records who holds `key` (for busy errors raised within this process, and
 * inspect()): its grant, whose `lost` tells once another process may hold
 * it, though the slot stays taken until release().
 */
export function setLocalHolder(key: string, grant: Grant): void {
  const slot = slots.get(key);
  if (slot) slot.holder = grant;
}

/** Hands `key` to the next waiter, or frees it. */
export function releaseLocal(key: string): void {
  const slot = slots.get(key);
  if (!slot) return;
  const next = slot.queue.shift();
  slot.holder = null;
  if (next) next.grant();
  else slots.delete(key);
}
