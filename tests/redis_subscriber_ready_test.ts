// The subscriber connection the Redis kind opens (a duplicate of the user's
// client) must deliver every channel it subscribed. A duplicate of an
// ioredis client made with lazyConnect: true connects on its first command;
// SUBSCRIBEs sent while it was still connecting went out before its ready
// check, whose INFO the server then refused ("Connection in subscriber
// mode"): ioredis dropped the connection and some channels stayed deaf for
// good. Waiters on them were woken only by their place's renewal, every
// 100 ms, which cut a busy lock's throughput by three quarters.
import { test } from "node:test";
import assert from "node:assert/strict";
import { adaptRedisClient } from "../lib/redis/client_adapter.ts";
import { watchReleases } from "../lib/redis/_release_listener.ts";
import { runtime } from "../lib/runtime/mod.ts";
import { describeRedis } from "./_redis_server.ts";
import { redisSuite } from "./_redis_suite.ts";
import { eventually } from "./_waiting.ts";

describeRedis("the Redis kind's subscriber connection", () => {
  const suite = redisSuite();

  for (const lazyConnect of [true, false]) {
    test(`every channel subscribed while it connects hears its messages (lazyConnect ${lazyConnect})`, async () => {
      const client = suite.client({ lazyConnect });
      if (lazyConnect) await client.connect();
      const adapter = adaptRedisClient(client);
      const prefix = `sub-ready-${crypto.randomUUID().slice(0, 8)}`;
      const heard = new Map<string, number>();
      const watches = [];
      // Channels subscribed one after another while the client is busy, as
      // waiters on several keys of one client do.
      for (let k = 0; k < 10; k++) {
        const channel = `${prefix}:${k}`;
        const watch = watchReleases(adapter, runtime, channel);
        watch.listen(() => heard.set(channel, (heard.get(channel) ?? 0) + 1));
        watches.push(watch);
        await client.ping();
      }
      try {
        const ready = await Promise.all(watches.map((watch) => watch.ready));
        assert.deepEqual(ready, ready.map(() => true), "every subscription went live");
        for (let k = 0; k < 10; k++) await suite.raw.publish(`${prefix}:${k}`, "released");
        assert.ok(
          await eventually(() => heard.size === 10, 3_000),
          `heard on ${heard.size} of 10 channels: ${[...heard.keys()].join(", ")}`,
        );
      } finally {
        for (const watch of watches) watch.leave();
      }
    });
  }
});
