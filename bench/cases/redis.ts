// The Redis kind against its floor: two raw round trips with ioredis on the
// same redis-server — SET NX PX, then the compare-and-delete Lua script
// every Redis lock releases with (issue 8's floor). Measured: acquire+release,
// contended detection, hand-off, and throughput with 100 clients over 10
// names (each client with its own connection, and all of a process's
// clients on one), and without contention (100 clients × 100 names) beside the raw
// floor of a Redis lock under the same load. The floors are measured
// whenever a redis-server is running.

import type { BenchCase } from "../_case.ts";
import { measureAcquireRelease, measureContended } from "../_kind_ops.ts";
import { COMPARE_AND_DELETE, hasKind, makeLocker, redisClient } from "../_lockers.ts";
import { measureOps } from "../_measure.ts";
import { measureThroughput, SHARED_CLIENT_OPERATION } from "../_throughput.ts";
import { measureHandoff } from "./handoff.ts";

const ROWS: [string, string][] = [
  ["redis.acquire_release", "acquire+release"],
  ["redis.contended", "contended detection (tryLock on a held lock)"],
  ["redis.handoff", "hand-off to a waiting process"],
  ["redis.throughput_shared", "throughput, 100 clients × 10 names"],
  ["redis.throughput_own", "throughput, 100 clients × 100 names (no contention)"],
  ["redis.throughput_one_client", SHARED_CLIENT_OPERATION],
];
const FLOOR: [string, string] = [
  "floor.redis_pair",
  "two raw Redis round trips (SET NX PX + Lua DEL)",
];
const OWN_FLOOR: [string, string] = [
  "floor.redis_own",
  "raw SET NX PX + Lua DEL, 100 clients × 100 names",
];

export const redis: BenchCase = {
  name: "redis",
  async run(ctx) {
    if (!ctx.redis) {
      const why = "no redis-server: run through bench/run.sh";
      ctx.skip(FLOOR[0], "floor", FLOOR[1], why);
      ctx.skip(OWN_FLOOR[0], "floor", OWN_FLOOR[1], why);
      for (const [id, operation] of ROWS) ctx.skip(id, "redis", operation, why);
      return;
    }
    const raw = redisClient(ctx.redis);
    ctx.defer(() => raw.quit());
    const key = ctx.unique("redis-floor");
    const value = crypto.randomUUID();
    const sha = String(await raw.script("LOAD", COMPARE_AND_DELETE));
    const floor = await measureOps(async () => {
      if ((await raw.set(key, value, "PX", 30_000, "NX")) !== "OK") {
        throw new Error("floor key taken");
      }
      if ((await raw.evalsha(sha, 1, key, value)) !== 1) throw new Error("floor key lost");
    }, ctx.budget);
    ctx.record(FLOOR[0], "floor", FLOOR[1], floor, "ioredis, one connection, EVALSHA");

    // After the load processes have run ours (warm, as for the peers, which
    // come later): measured first, the floor came out slower than peers
    // doing the same two commands.
    const measureOwnFloor = () =>
      measureThroughput(ctx, "redis-raw", 100, 100, OWN_FLOOR[0], OWN_FLOOR[1], "floor");
    if (!hasKind("redis")) {
      await measureOwnFloor();
      for (const [id, operation] of ROWS) {
        ctx.skip(id, "redis", operation, "kind redis not available");
      }
      return;
    }
    const locker = await makeLocker("redis", ctx.setup);
    ctx.defer(() => locker.close());
    await measureAcquireRelease(ctx, "redis", locker, "lock(name, { redis: ioredis })");
    await measureContended(ctx, "redis", locker, "redis");
    await measureHandoff(
      ctx,
      "redis",
      locker,
      "the release hands the lock to the queued waiter, told by pub/sub",
    );
    await measureThroughput(ctx, "redis", 100, 10, ROWS[3][0], ROWS[3][1]);
    await measureThroughput(ctx, "redis", 100, 100, ROWS[4][0], ROWS[4][1]);
    await measureThroughput(ctx, "redis:shared", 100, 10, ROWS[5][0], ROWS[5][1], "redis");
    await measureOwnFloor();
  },
};
