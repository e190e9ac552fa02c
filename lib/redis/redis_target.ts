/**
 * The Redis kind as a lock target: one script per try, a heartbeat while
 * held, a compare-and-delete on release, and a pub/sub wake-up for waiters.
 *
 * @module
 */

import type { Runtime } from "../runtime/mod.ts";
import type { Attempt, LockTarget } from "../_kind.ts";
import type { LockInfo } from "../types.ts";
import { LockError } from "../errors.ts";
import { adapterId, type RedisAdapter } from "./client_adapter.ts";
import { Heartbeat, leaseFor } from "./heartbeat.ts";
import { holderInfo, type RedisKeys, redisKeys, replyNumber } from "./key_layout.ts";
import { ACQUIRE, EXTEND, FORCE_RELEASE_IF_STALE, INSPECT, RELEASE, runScript } from "./scripts.ts";
import { watchIfLive, watchReleases } from "./_release_listener.ts";
import { ISOLATE_ID } from "../_isolate.ts";


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
      `The ttl option must be a number of ms from ${MIN_TTL} to ${MAX_TTL}, got ${String(ttl)}. ` +
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

/** The acquire script's reply: `[1, token, acquiredAt]` or `[0, value, pttl]`. */
type AcquireReply = [unknown, unknown, unknown];

/**
 * The acquire script's ARGV: owner, ttl, and the head of the stored JSON —
 * owner first, so ownership is a prefix comparison in Lua.
 */
export function acquireArgs(
  runtime: Runtime,
  owner: string,
  ttl: number,
  lease: number,
): string[] {
  // owner is a UUID: nothing in it needs escaping.
  const rest = JSON.stringify({
    pid: runtime.pid,
    host: runtime.hostname(),
    isolate: ISOLATE_ID,
    ttl,
    lease,
  });
  return [owner, String(ttl), `{"owner":"${owner}",${rest.slice(1, -1)}`];
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

/**
 * A Redis lock target over one client.
 *
 * @param runtime The runtime adapter.
 * @param settings Client, name, key, ttl.
 * @returns The target.
 */
export function redisTarget(runtime: Runtime, settings: RedisTargetSettings): LockTarget {
  const { adapter, name, key, ttl } = settings;
  const keys = redisKeys(key);
  const lease = leaseFor(ttl);
  return {
    key: `redis:${adapterId(adapter)}:${key}`,
    async tryAcquire(): Promise<Attempt> {
      const owner = crypto.randomUUID();
      const afterTry = wakeOnRelease(runtime, adapter, keys);
      const sentAt = runtime.monotonic();
      let reply: AcquireReply;
      try {
        reply = await runScript(
          adapter,
          ACQUIRE,
          [keys.lock, keys.token],
          acquireArgs(runtime, owner, ttl, lease),
        ) as AcquireReply;
      } catch (error) {
        afterTry(true);
        // The script may have run before the connection failed: undo it in
        // the background (by owner, so nothing else is touched).
        runScript(adapter, RELEASE, [keys.lock], [owner, keys.channel]).catch(() => {});
        throw error;
      }
      if (replyNumber(reply[0]) !== 1) {
        return {
          acquired: false,
          holder: holderInfo(name, key, reply[1], reply[2]),
          ...afterTry(false),
        };
      }
      afterTry(true);
      const token = replyNumber(reply[1]);
      const info = grantInfo(runtime, settings, owner, token, replyNumber(reply[2]));
      const release = () => runScript(adapter, RELEASE, [keys.lock], [owner, keys.channel]);
      let releasing: Promise<void> | null = null;
      let lost = false;
      const heartbeat = new Heartbeat({
        runtime,
        name,
        ttl,
        lease,
        sentAt,
        renew: async () =>
          replyNumber(await runScript(adapter, EXTEND, [keys.lock], [owner, ttl])) === 1
            ? "renewed"
            : "gone",
        // What is left of a lost lock (our key, if Redis still has it) goes,
        // so the next holder need not wait for the ttl. In the background:
        // Redis may be unreachable, and release() must not wait for it.
        onLost: () => {
          lost = true;
          release().catch(() => {});
        },
      });
      return {
        acquired: true,
        grant: {
          token,
          info,
          lost: heartbeat.signal,
          release: () => {
            heartbeat.stop();
            if (lost) return Promise.resolve();
            return releasing ??= release().then(() => {});
          },
        },
      };
    },
    inspect: () => inspectRedis(adapter, name, key),
  };
}

/** The holder of the lock under `key`, or null if it is free. */
export async function inspectRedis(
  adapter: RedisAdapter,
  name: string,
  key: string,
): Promise<LockInfo | null> {
  const reply = await runScript(adapter, INSPECT, [key], []) as unknown[];
  if (!Array.isArray(reply) || reply.length === 0) return null;
  return holderInfo(name, key, reply[0], reply[1], reply[2]);
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
      `forceReleaseIfStale(staleMs) needs a number of ms >= 0, got ${String(staleMs)}.`,
    );
  }
  const keys = redisKeys(key);
  const reply = await runScript(adapter, FORCE_RELEASE_IF_STALE, [keys.lock], [
    Math.floor(staleMs),
    keys.channel,
  ]) as unknown[];
  return Array.isArray(reply) && replyNumber(reply[0]) === 1;
}
