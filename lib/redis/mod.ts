/**
 * The Redis kind: a lock on a Redis (or Valkey) key through the client you
 * already use — `ioredis`, `redis` (node-redis) or Bun's `RedisClient` —
 * with atomic Lua acquire/renew/release by owner, a background heartbeat,
 * loud loss through `held.signal`, pub/sub wake-up for waiters, fencing
 * tokens, AppLocker's `RedisLock` surface, and Redlock over several masters.
 *
 * @example Take a lock over Redis with the one API
 * ```ts
 * import { Redis } from "npm:ioredis";
 * import { lock } from "jsr:@x/socketlock";
 * const redis = new Redis();
 * const held = await lock("nightly-report", { redis, ttl: 10_000, timeout: 5_000 });
 * try {
 *   held.signal.throwIfAborted(); // before each step that needs exclusivity
 *   console.log(held.token);
 * } finally {
 *   await held.release();
 *   await redis.quit();
 * }
 * ```
 *
 * @module
 */

export { RedisLock, type RedisLockOptions } from "./redis_lock.ts";
export { Redlock, type RedlockOptions } from "./redlock.ts";
export { adaptRedisClient, type RedisAdapter, type RedisSubscriber } from "./client_adapter.ts";
export { defaultRedisKey, type RedisKeys, redisKeys } from "./key_layout.ts";
export { DEFAULT_TTL } from "./redis_target.ts";
export type { HeldLock, LockInfo, LockKind, RetryOptions } from "../types.ts";
