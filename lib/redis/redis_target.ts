/**
 * The Redis kind as a lock target: one script per try, a heartbeat while
 * held, a compare-and-delete on release that hands the lock to the next
 * waiter in Redis' queue, and pub/sub to tell that waiter.
 *
 * @module
 */

import type { Runtime } from "../runtime/mod.ts";
import type { Attempt, LockTarget } from "../_kind.ts";
import type { LockInfo } from "../types.ts";
import { LockError, LockProtocolError } from "../errors.ts";
import { adapterId, type RedisAdapter } from "./client_adapter.ts";
import { heartbeatGrant, leaseFor, safeLeaseMs } from "./heartbeat.ts";
import { holderInfo, type RedisKeys, redisKeys, replyNumber, replyString } from "./key_layout.ts";
import {
  ACQUIRE,
  CANCEL,
  EXTEND,
  FORCE_RELEASE_IF_STALE,
  INSPECT,
  isCommandTimeout,
  PASS_ON,
  RELEASE,
  runScript,
} from "./scripts.ts";
import { runGrace } from "./_run_grace.ts";
import { seenIfLive, watchIfLive, watchReleases } from "./_release_listener.ts";
import {
  claimMs,
  clientIdOf,
  type HeardGrant,
  refreshMs,
  Waiting,
  WINDOW_REFRESHES,
} from "./_waiting.ts";
import { ISOLATE_ID } from "../_isolate.ts";
import { shown } from "../_shown.ts";

/** The default ttl of a Redis lock, in ms: a crashed holder's lock frees itself this long after its last renewal. */
export const DEFAULT_TTL = 30_000;
/** The shortest ttl accepted, in ms. */
export const MIN_TTL = 30;
const MAX_TTL = 2_147_483_647;

/**
 * Checks a ttl option.
 *
 * @param ttl The ttl in ms, or undefined for {@link DEFAULT_TTL}.
 * @returns The ttl as whole ms.
 * @throws {LockError} If it is not a number from 30 ms to about 24.8 days.
 */
export function validateTtl(ttl: unknown): number {
  if (ttl === undefined) return DEFAULT_TTL;
  if (typeof ttl !== "number" || !Number.isFinite(ttl) || ttl < MIN_TTL || ttl > MAX_TTL) {
    throw new LockError(
      `The ttl option must be a number of ms from ${MIN_TTL} to ${MAX_TTL}, got ${shown(ttl)}. ` +
        `It is how soon a crashed holder's lock frees itself (default ${DEFAULT_TTL}).`,
    );
  }
  return Math.ceil(ttl);
}

/** Everything one Redis lock target needs. */
export interface RedisTargetSettings {
  /** The client, adapted. */
  adapter: RedisAdapter;
  /** The lock's name. */
  name: string;
  /** The lock's key. */
  key: string;
  /** The ttl in ms. */
  ttl: number;
}

/**
 * Makes the head of the JSON stored under the lock for each owner — owner
 * first, so ownership is a prefix comparison in Lua. The rest (pid, host,
 * isolate, ttl, lease) is the same for every acquisition of one target.
 */
export function valueHead(
  runtime: Runtime,
  ttl: number,
  lease: number,
): (owner: string) => string {
  // Made at the first acquisition: reading the host name may need a permission.
  let rest: string | null = null;
  return (owner) => {
    rest ??= JSON.stringify({
      pid: runtime.pid,
      host: runtime.hostname(),
      isolate: ISOLATE_ID,
      ttl,
      lease,
    }).slice(1, -1);
    // owner is a UUID: nothing in it needs escaping.
    return `{"owner":"${owner}",${rest}`;
  };
}

/** The KEYS of the acquire, release, cancel and force-release scripts. */
export function scriptKeys(keys: RedisKeys): string[] {
  return [keys.lock, keys.token, keys.queue, keys.places];
}

/**
 * A token as the scripts returned it, checked to be an exact integer.
 *
 * @throws {LockProtocolError} If the counter was pushed past 2^53.
 */
export function checkedToken(reply: unknown, key: string): number {
  const token = replyNumber(reply);
  if (Number.isSafeInteger(token) && token > 0) return token;
  throw new LockProtocolError(
    `The fencing counter "${key}:token" gave the token ${String(reply)}, which is not an ` +
      "exact integer below 2^53. Fix: delete that key (tokens go on from the server's clock).",
  );
}

/** This process's info as the holder of a granted lock. Shared with Redlock. */
export function grantInfo(
  runtime: Runtime,
  settings: { name: string; key: string; ttl: number },
  owner: string,
  token: number,
  acquiredAt: number,
): LockInfo {
  return {
    kind: "redis",
    name: settings.name,
    pid: runtime.pid,
    host: runtime.hostname(),
    isolate: ISOLATE_ID,
    acquiredAt,
    token,
    key: settings.key,
    owner,
    ttl: settings.ttl,
  };
}

/** The wake-up of a failed attempt: a pub/sub release on `keys.channel`. */
export function wakeOnRelease(
  runtime: Runtime,
  adapter: RedisAdapter,
  keys: RedisKeys,
): (acquired: boolean) => Pick<Extract<Attempt, { acquired: false }>, "wake" | "cancelWake"> {
  // Taken before the try, a live watch hears any release the try misses.
  const early = watchIfLive(adapter, keys.channel);
  const since = early ? early.seen() : -1;
  return (acquired) => {
    if (acquired) {
      early?.leave();
      return {};
    }
    const watch = early ?? watchReleases(adapter, runtime, keys.channel);
    const wake = watch.wake(since);
    return {
      wake: wake.promise,
      cancelWake: () => {
        wake.cancel();
        watch.leave();
      },
    };
  };
}

const WAITING = Symbol("waiting");

// What every try that left its caller queued shares: the holder's getter,
// read only if the wait ends without the lock. On a prototype rather than
// in the literal, which would give every try a hidden class of its own (see
// ../_lazy_wake.ts).
const waitingAttempt = {
  get holder(): LockInfo | null {
    return (this as unknown as { [WAITING]: Waiting })[WAITING].holder;
  },
};

/**
 * A Redis lock target over one client. A caller that waits queues in
 * Redis; a release hands the lock to the first live waiter and tells only
 * it, by pub/sub: waiting costs no polling, one release wakes one waiter,
 * and the new holder needs no further round trip.
 *
 * @param runtime The runtime adapter.
 * @param settings Client, name, key, ttl.
 * @returns The target.
 */
export function redisTarget(runtime: Runtime, settings: RedisTargetSettings): LockTarget {
  const { adapter, name, key, ttl } = settings;
  const keys = redisKeys(key);
  const keyList = scriptKeys(keys);
  const lease = leaseFor(ttl);
  const head = valueHead(runtime, ttl, lease);
  const refresh = refreshMs(lease);
  const window = String(refresh * WINDOW_REFRESHES);
  const claimTtl = claimMs(ttl, refresh);
  const claimArg = String(claimTtl);
  const claimLease = leaseFor(claimTtl);
  const ttlArg = String(ttl);
  const client = clientIdOf(adapter);
  // Grants to this client's waiters are published here, and nowhere else.
  const grants = `${keys.channel}:${client}`;
  // The wait in progress. Only one acquisition of a target runs at a time:
  // the in-process queue (keyed by client and key) lets one through.
  let waiting: Waiting | null = null;

  const cancel = (owner: string) => runScript(adapter, CANCEL, keyList, [owner]).catch(() => {});
  // A failed pass-on costs only time: the first waiter's own timer ends the run.
  const grace = runGrace((run) => void runScript(adapter, PASS_ON, keyList, [run]).catch(() => {}));

  // leaveQueue: the waiter gives up (or a try failed) and may be queued,
  // or even have been handed the lock meanwhile.
  function endWaiting(w: Waiting, leaveQueue: boolean): void {
    if (waiting === w) waiting = null;
    w.end();
    // In the background: a waiter that gives up must not wait for Redis.
    if (leaveQueue && (w.place !== "" || w.unanswered)) void cancel(w.owner);
  }

  // The waiting loop calls tryAcquire again right after cancelWake when it
  // goes on waiting; if it does not, the caller gave up (a timeout, an
  // abort, or a tryLock that never waits): leave the queue.
  function leaveUnlessRetried(w: Waiting): void {
    w.retrying = false;
    queueMicrotask(() => {
      if (!w.retrying && waiting === w) endWaiting(w, true);
    });
  }

  // A try of a wait whose reply did not come in time (the client's command
  // timeout): not acquired yet. Redis may still run it, and queue w.owner or
  // give it the lock: the wait goes on as that owner, so its next try takes
  // such a lock up (ACQUIRE is idempotent per owner, token included), and a
  // caller who gives up cancels by owner — after the late try, which went
  // first on the same connection. No wake: the loop backs off meanwhile.
  function unanswered(w: Waiting): Attempt {
    waiting = w;
    w.unconfirm();
    w.unanswered = true;
    return { acquired: false, holder: w.holder, cancelWake: () => leaveUnlessRetried(w) };
  }

  // firstLease: a lock handed over lives its claim time until renewed.
  // Called once the try or claim has ended its waiting.
  function grantFor(
    owner: string,
    token: number,
    acquiredAt: number,
    sentAt: number,
    firstLease?: number,
  ): Attempt {
    // A reply that came after the lease it gives ran out (Redis or this
    // process slow, or paused): Redis may have given the key to another
    // meanwhile. Undone by owner; the caller tries again afresh if it waits.
    if (runtime.monotonic() >= sentAt + safeLeaseMs(firstLease ?? lease)) {
      void cancel(owner);
      return { acquired: false, holder: null };
    }
    const heldSince = runtime.monotonic();
    const grant = heartbeatGrant({
      runtime,
      name,
      ttl,
      lease,
      sentAt,
      firstLease,
      token,
      info: grantInfo(runtime, settings, owner, token, acquiredAt),
      renew: async () =>
        replyNumber(await runScript(adapter, EXTEND, [keys.lock], [owner, ttlArg])) === 1
          ? "renewed"
          : "gone",
      release: async () => {
        const released = await runScript(adapter, RELEASE, keyList, [
          owner,
          String(Math.floor(runtime.monotonic() - heldSince)),
        ]);
        if (Array.isArray(released) && replyNumber(released[0]) === 2) {
          grace.leftFree(replyString(released[1]) ?? "");
        }
        return Array.isArray(released) || replyNumber(released) !== 0;
      },
    });
    return { acquired: true, grant };
  }

  // Holds a lock a release handed over by pub/sub, for its claim time. Its
  // lease counts from the last try that found us queued; if that leaves
  // too little (a slow process, a long pause), the lock is renewed first.
  // Null: queued again; not acquired: that renewal timed out.
  async function claim(w: Waiting, heard: HeardGrant): Promise<Attempt | null> {
    let sentAt = w.confirmedAt;
    let firstLease: number | undefined = claimLease;
    const now = runtime.monotonic();
    if (sentAt + safeLeaseMs(claimLease) - now < claimLease / 2) {
      let renewed: boolean;
      try {
        renewed = replyNumber(
          await runScript(adapter, EXTEND, [keys.lock], [w.owner, ttlArg]),
        ) === 1;
      } catch (error) {
        // It may have run: the next try, as w.owner, finds out.
        if (isCommandTimeout(error)) return unanswered(w);
        endWaiting(w, true);
        throw error;
      }
      if (!renewed) {
        // Gone before we could use it (it expired): queue again.
        w.unconfirm();
        return null;
      }
      sentAt = now;
      firstLease = undefined;
    }
    endWaiting(w, false);
    return grantFor(
      w.owner,
      tokenOrCancel(w.owner, heard.token),
      heard.acquiredAt,
      sentAt,
      firstLease,
    );
  }

  function tokenOrCancel(owner: string, reply: unknown): number {
    try {
      return checkedToken(reply, key);
    } catch (error) {
      void cancel(owner);
      throw error;
    }
  }

  function stillWaiting(w: Waiting): Attempt {
    waiting = w;
    const wake = w.wake();
    return {
      __proto__: waitingAttempt,
      [WAITING]: w,
      acquired: false,
      wake: wake.promise,
      // By a grant, the lock left free for us, or our place due for renewal.
      wakesItself: true,
      cancelWake: () => {
        wake.cancel();
        leaveUnlessRetried(w);
      },
    } as unknown as Attempt;
  }

  async function tryAcquire(willWait = true): Promise<Attempt> {
    grace.tried();
    let w = waiting;
    // Before the first try: what our channel had seen, if it is subscribed.
    let seenBefore = -1;
    if (w) {
      w.retrying = true;
      const heard = w.takeGrant();
      if (heard) {
        const claimed = await claim(w, heard);
        if (claimed) return claimed;
      }
      if (w.canWait(runtime.monotonic())) return stillWaiting(w);
      // Trying again, so waiting: listen (if not yet) before queuing.
      if (!w.watch) w.hear(watchReleases(adapter, runtime, grants));
    } else if (willWait) {
      // A client that waited on this key a moment ago is still subscribed:
      // it queues on its first try, as it will likely wait again. Its
      // Waiting and watch are made only if that try leaves it queued (a
      // looping holder's next try mostly takes the lock). Otherwise (an
      // uncontended lock) the first try does not queue, nor does a tryLock
      // ever: a lock handed to it would only be passed on again.
      seenBefore = seenIfLive(adapter, grants);
    }
    const owner = w ? w.owner : crypto.randomUUID();
    let live = w !== null && w.live();
    const args = [owner, ttlArg, head(owner)];
    if (w || seenBefore >= 0) {
      args.push(window, w ? w.place : "", client, claimArg);
      w?.trying();
    }
    const sentAt = runtime.monotonic();
    let reply: unknown[];
    try {
      reply = await runScript(adapter, ACQUIRE, keyList, args) as unknown[];
    } catch (error) {
      // A wait (w: this acquisition waited already) outlasts a timeout.
      if ((willWait || w) && isCommandTimeout(error)) {
        return unanswered(w ?? new Waiting(owner, runtime, refresh));
      }
      // The script may have run before the connection failed (queued us,
      // or even took the lock): undo it in the background, by owner.
      if (w) endWaiting(w, false);
      void cancel(owner);
      throw error;
    }
    if (replyNumber(reply[0]) === 1) {
      if (w) endWaiting(w, false);
      return grantFor(owner, tokenOrCancel(owner, reply[1]), replyNumber(reply[2]), sentAt);
    }
    if (!w) {
      w = new Waiting(owner, runtime, refresh);
      if (seenBefore >= 0) {
        w.hear(watchReleases(adapter, runtime, grants));
        // Something published on our channel since the try was sent may
        // have been our grant, unheard: the next try then asks Redis.
        live = w.watch!.seen() === seenBefore;
      }
    }
    w.confirmed(
      sentAt,
      live,
      replyString(reply[3]) ?? "",
      replyNumber(reply[4]),
      // No value: the lock is free, but dead waiters still to drop may hide
      // a live one ahead of us (scripts.ts, firstLive): no holder to name.
      () => reply[1] ? holderInfo(name, key, reply[1], reply[2]) : null,
    );
    // A grant heard while the try was under way.
    const heard = w.takeGrant();
    if (heard) {
      const claimed = await claim(w, heard);
      if (claimed) return claimed;
    }
    return stillWaiting(w);
  }

  return {
    key: `redis:${adapterId(adapter)}:${key}`,
    tryAcquire,
    inspect: () => inspectRedis(adapter, name, key),
  };
}

/** The holder of the lock under `key`, or null if it is free. */
export async function inspectRedis(
  adapter: RedisAdapter,
  name: string,
  key: string,
): Promise<LockInfo | null> {
  const keys = redisKeys(key);
  const reply = await runScript(adapter, INSPECT, [keys.lock, keys.queue], []) as unknown[];
  if (!Array.isArray(reply) || reply.length === 0) return null;
  return holderInfo(name, key, reply[0], reply[1], reply[2], reply[3]);
}

/**
 * Deletes the lock under `key` if its holder has not renewed it for longer
 * than `staleMs` and than its own lease. Returns true if it was deleted.
 */
export async function forceReleaseIfStale(
  adapter: RedisAdapter,
  key: string,
  staleMs: number,
): Promise<boolean> {
  if (typeof staleMs !== "number" || !(staleMs >= 0)) {
    throw new LockError(
      `forceReleaseIfStale(staleMs) needs a number of ms >= 0, got ${shown(staleMs)}.`,
    );
  }
  const keys = redisKeys(key);
  const reply = await runScript(adapter, FORCE_RELEASE_IF_STALE, scriptKeys(keys), [
    Math.floor(staleMs),
  ]) as unknown[];
  return Array.isArray(reply) && replyNumber(reply[0]) === 1;
}
