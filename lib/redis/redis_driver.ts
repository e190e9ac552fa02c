/**
 * The driver behind `lock(name, { redis: client })`: one client gives the
 * single-Redis lock, an array of clients (independent masters) Redlock.
 *
 * @module
 */

import type { KindDriver, LockTarget } from "../_kind.ts";
import type { Runtime } from "../runtime/mod.ts";
import { LockError } from "../errors.ts";
import { adaptRedisClient, type RedisAdapter, SUPPORTED_CLIENTS } from "./client_adapter.ts";
import { lockKeyFor } from "./key_layout.ts";
import { redisTarget, validateTtl } from "./redis_target.ts";
import { redlockTarget } from "./redlock.ts";

/** The Redis kind for `lock(name, { redis })`, with the key `socketlock:<name>`. */
export const redisDriver: KindDriver = {
  kind: "redis",
  // deno-lint-ignore require-await
  async open(name, options, runtime) {
    const client = options.redis;
    if (client === undefined || client === null) {
      throw new LockError(
        `Lock "${name}" uses kind "redis" but no client was given. ` +
          `Call lock(name, { redis: client }) with ${SUPPORTED_CLIENTS}.`,
      );
    }
    const ttl = validateTtl(options.ttl);
    if (Array.isArray(client)) {
      const key = lockKeyFor(name, undefined);
      return redlockTarget(runtime, { adapters: client.map(adaptRedisClient), name, key, ttl });
    }
    return cachedTarget(runtime, adaptRedisClient(client), name, ttl);
  },
};

/** How many targets are kept per client. */
const CACHED_PER_CLIENT = 256;

interface Cached {
  runtime: Runtime;
  ttl: number;
  target: LockTarget;
}

const cache = new WeakMap<RedisAdapter, Map<string, Cached>>();

// A busy name's lock() calls reuse its target — keys, value head, script
// arguments — instead of building them every time. Safe to share: one
// acquisition of a target runs at a time (the in-process queue, keyed by
// client and key, lets one through), and between acquisitions a target
// keeps only whether this process came back after a release (for a run of
// quick acquisitions; see _run_grace.ts), which the next lock() call must see.
// Found by name, not by a key built per call (the default key follows from
// the name, and is made and checked with the target); a call with another
// ttl replaces it.
function cachedTarget(
  runtime: Runtime,
  adapter: RedisAdapter,
  name: string,
  ttl: number,
): LockTarget {
  let targets = cache.get(adapter);
  if (!targets) {
    targets = new Map();
    cache.set(adapter, targets);
  }
  const found = targets.get(name);
  if (found && found.ttl === ttl && found.runtime === runtime) return found.target;
  const key = lockKeyFor(name, undefined);
  const target = redisTarget(runtime, { adapter, name, key, ttl });
  if (!found && targets.size >= CACHED_PER_CLIENT) targets.delete(targets.keys().next().value!);
  targets.set(name, { runtime, ttl, target });
  return target;
}
