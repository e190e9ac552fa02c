// The Redis peers users would pick instead, on the same redis-server and
// ioredis: redlock 4 (one instance) and redis-semaphore 5's Mutex.
// acquire+release, contended detection, hand-off (both poll), and the same
// throughput loads as ours (100 clients × 10 names, two load processes, with
// a connection each or one per process; and 100 names, no contention).

import type { BenchCase } from "../_case.ts";
import { measureAcquireRelease, measureContended } from "../_kind_ops.ts";
import { makeLocker, PEER_RETRY_MS } from "../_lockers.ts";
import { measureThroughput, SHARED_CLIENT_OPERATION } from "../_throughput.ts";
import { measureHandoff } from "./handoff.ts";

const PEERS = ["redlock", "redis-semaphore"] as const;

export const redisPeers: BenchCase = {
  name: "redis-peers",
  async run(ctx) {
    for (const peer of PEERS) {
      if (!ctx.redis) {
        const why = "no redis-server: run through bench/run.sh";
        ctx.skip(`${peer}.acquire_release`, peer, "acquire+release", why);
        continue;
      }
      const locker = await makeLocker(peer, ctx.setup);
      ctx.defer(() => locker.close());
      await measureAcquireRelease(ctx, peer, locker, "ttl 30 s");
      await measureContended(
        ctx,
        peer,
        locker,
        peer,
        undefined,
        peer === "redis-semaphore"
          ? "tryAcquire(), acquireAttemptsLimit 1, retryInterval 0 (it still waits on a 0 ms timer after its failed try)"
          : "retryCount 0",
      );
      await measureHandoff(
        ctx,
        peer,
        locker,
        peer === "redlock"
          ? `retryDelay ${PEER_RETRY_MS} ms, no jitter (default 200 ms ± 100 ms)`
          : `retryInterval ${PEER_RETRY_MS} ms (its default)`,
      );
      await measureThroughput(
        ctx,
        peer,
        100,
        10,
        `${peer}.throughput_shared`,
        "throughput, 100 clients × 10 names",
      );
      await measureThroughput(
        ctx,
        `${peer}:shared`,
        100,
        10,
        `${peer}.throughput_one_client`,
        SHARED_CLIENT_OPERATION,
        peer,
      );
      await measureThroughput(
        ctx,
        peer,
        100,
        100,
        `${peer}.throughput_own`,
        "throughput, 100 clients × 100 names (no contention)",
      );
    }
  },
};
