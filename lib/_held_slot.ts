// What the seed-compatible lock objects (SocketLock, FolderLock, RedisLock,
// PortLock) share: each holds at most one lock at a time, taken through the
// common acquire() and given back by release().

import type { LockTarget } from "./_kind.ts";
import type { HeldLock, LockKind, RetryOptions } from "./types.ts";
import type { Runtime } from "./runtime/mod.ts";
import { acquire } from "./_acquire.ts";
import { LockBusyError, LockError } from "./errors.ts";

/** The lock an object holds, if any. */
export interface HeldSlot {
  held: HeldLock | null;
  /** True while an acquire() of the object is under way. */
  acquiring?: boolean;
  /** The release under way: a second release() meanwhile waits for it. */
  releasing?: Promise<void>;
}

/** How a lock object takes its lock. */
export interface SlotRequest {
  /** The name in errors and `LockBusyError`. */
  name: string;
  /** How the object is named when it already holds the lock ("SocketLock \"x\""). */
  label: string;
  kind: LockKind;
  /** The target, or its making (checked for an already held lock first). */
  target: LockTarget | (() => Promise<LockTarget>);
  runtime: Runtime;
  retry?: RetryOptions;
}

/**
 * Takes the lock into `slot`: waits up to `timeout` ms if `wait` (a
 * `timeout` of 0 tries once), else tries once.
 *
 * @returns The held lock, or null if not waiting and the lock is held.
 * @throws {LockError} If the slot already holds a lock.
 * @throws {LockBusyError} If waiting with `timeout` 0 and the lock is held.
 */
export async function takeInto(
  slot: HeldSlot,
  request: SlotRequest,
  wait: boolean,
  timeout?: number,
  signal?: AbortSignal,
): Promise<HeldLock | null> {
  if (slot.held) {
    throw new LockError(`${request.label} is already held by this object; release() it first.`);
  }
  // Checked and set before the first await: a second acquire() meanwhile
  // would otherwise queue behind the first and hold the lock again after
  // its release, unnoticed.
  if (slot.acquiring) {
    throw new LockError(
      `${request.label} is being acquired by this object already; await that acquire() first.`,
    );
  }
  slot.acquiring = true;
  try {
    const { target } = request;
    const result = await acquire({
      name: request.name,
      kind: request.kind,
      target: typeof target === "function" ? await target() : target,
      runtime: request.runtime,
      wait: wait && timeout !== 0,
      timeout,
      signal,
      retry: request.retry,
    });
    if (!result.held && wait) throw new LockBusyError(request.name, result.holder);
    slot.held = result.held;
    return result.held;
  } finally {
    slot.acquiring = false;
  }
}

/**
 * Releases what `slot` holds; nothing if it holds nothing (a release under
 * way is joined, not skipped: the lock is still held until it ends). A
 * release that fails puts the lock back, so that release() can be tried again, unless
 * the object is taking a lock again meanwhile.
 */
export async function releaseFrom(slot: HeldSlot): Promise<void> {
  if (slot.releasing) return await slot.releasing;
  const held = slot.held;
  if (!held) return;
  slot.held = null;
  const releasing = slot.releasing = held.release();
  try {
    await releasing;
  } catch (error) {
    if (slot.held === null && !slot.acquiring) slot.held = held;
    throw error;
  } finally {
    if (slot.releasing === releasing) slot.releasing = undefined;
  }
}
