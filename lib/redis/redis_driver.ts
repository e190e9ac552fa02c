/**
 * The driver behind `lock(name, { redis: client })`: one client gives the
 * single-Redis lock, an array of clients (independent masters) Redlock.
 *
 * @module
 */

import type { KindDriver } from "../_kind.ts";
import { LockError } from "../errors.ts";
import { adaptRedisClient, SUPPORTED_CLIENTS } from "./client_adapter.ts";
import { defaultRedisKey } from "./key_layout.ts";
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
    const key = defaultRedisKey(name);
    if (Array.isArray(client)) {
      return redlockTarget(runtime, { adapters: client.map(adaptRedisClient), name, key, ttl });
    }
    return redisTarget(runtime, { adapter: adaptRedisClient(client), name, key, ttl });
  },
};
