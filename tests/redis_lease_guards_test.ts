// Guards of the Redis kind that only show under a late reply or a lost
// counter: a renewal confirmed late must not stretch the holder's lease
// past what forceReleaseIfStale respects, and a lock handed to a queued
// waiter after the token counter was lost (evicted, flushed) still gets a
// larger token than the last holder's, and a waiter that hears its grant
// only after the hand-off's claim time ran out does not hold a lock Redis
// has let go.
import { test } from "node:test";
import assert from "node:assert/strict";
import { lock, tryLock } from "../mod.ts";
import { adaptRedisClient } from "../lib/redis/client_adapter.ts";
import { forceReleaseIfStale } from "../lib/redis/redis_target.ts";
import { EXTEND } from "../lib/redis/scripts.ts";
import { describeRedis } from "./_redis_server.ts";
import { redisSuite, stallOnGrant } from "./_redis_suite.ts";
import { relayProxy } from "./_relay_proxy.ts";
import { eventually } from "./_waiting.ts";

const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;

/**
 * A byte proxy on loopback in front of `port`: once `delayMs` is set,
 * replies reach the client that much later; the first reply so delayed
 * cuts the link (every byte dropped both ways, connections kept open).
 */
async function delayingProxy(port: number) {
  const state = { delayMs: 0, cut: false };
  const proxy = await relayProxy(port, (client, upstream) => {
    client.on("data", (chunk) => state.cut || upstream.write(chunk));
    upstream.on("data", (chunk) => {
      if (state.cut) return;
      if (state.delayMs === 0) return void client.write(chunk);
      setTimeout(() => {
        if (state.cut) return;
        client.write(chunk);
        state.cut = true;
      }, state.delayMs);
    });
  });
  return { ...proxy, state };
}

describeRedis("Redis kind: leases and tokens under late replies and lost counters", () => {
  const suite = redisSuite({ maxRetriesPerRequest: 1 });
  const client = (port?: number) => {
    const c = suite.client(port === undefined ? {} : { port });
    c.on("error", () => {});
    return c;
  };

  test("a renewal confirmed late counts from when it was sent: once forceReleaseIfStale lets another holder in, the old holder's signal has aborted", async () => {
    const name = unique("late-renewal");
    const key = `socketlock:${name}`;
    const proxy = await delayingProxy(suite.server.port);
    try {
      // The renewal must reach Redis as one EVALSHA, not a NOSCRIPT and an EVAL.
      await suite.raw.script("LOAD", EXTEND.source);
      // ttl 3 s: a 2 s lease, renewed every second.
      const held = await lock(name, { redis: client(proxy.port), ttl: 3_000 });
      // The first renewal reaches Redis at once; its reply comes 600 ms
      // later (well inside the lease), and nothing after it ever arrives.
      proxy.state.delayMs = 600;
      const breaker = adaptRedisClient(client());
      let other = null;
      for (let i = 0; i < 2_000 && other === null; i++) {
        if (await forceReleaseIfStale(breaker, key, 0)) {
          other = await tryLock(name, { redis: suite.raw });
        } else await new Promise((resolve) => setTimeout(resolve, 5));
      }
      assert.ok(other, "forceReleaseIfStale never broke the silent holder's lock");
      // Redis applied the renewal after the holder sent it, and breaks the
      // lock only a lease later: by the holder's clock its lease is over.
      assert.equal(
        held.signal.aborted,
        true,
        "another holder got the lock while the old holder's signal still said it held it",
      );
      await other.release();
    } finally {
      await proxy.close();
    }
  });

  test("a lock handed to a queued waiter after the token counter was lost still gets a larger token", async () => {
    const name = unique("lost-counter");
    const holder = await lock(name, { redis: client() });
    const next = lock(name, { redis: client(), timeout: 10_000 });
    assert.ok(
      await eventually(async () => (await suite.raw.zcard(`socketlock:${name}:queue`)) === 1),
      "the waiter queued",
    );
    // The counter alone is gone (evicted under maxmemory, or deleted).
    assert.equal(await suite.raw.del(`socketlock:${name}:token`), 1);
    await holder.release();
    const handed = await next;
    assert.ok(
      handed.token > holder.token,
      `the waiter was handed token ${handed.token} after ${holder.token}`,
    );
    await handed.release();
  });

  test("a waiter stalled between hearing its grant and using it past the claim time does not hold a lock Redis let go", async () => {
    const name = unique("late-claim");
    const key = `socketlock:${name}`;
    // The waiter's ttl 300: the lock is handed over to it for 300 ms (its
    // claim time). The holder's is long, so that a loaded machine cannot
    // end its lease before the waiter queues.
    const holder = await lock(name, { redis: client(), ttl: 5_000 });
    const waiterClient = client();
    // The waiter's subscriber connection stalls its process for 600 ms as
    // the grant arrives, before the lock code hears it: the hand-off's key
    // expires meanwhile.
    stallOnGrant(waiterClient, 600);
    const next = lock(name, { redis: waiterClient, ttl: 300, timeout: 10_000 });
    assert.ok(
      await eventually(async () => (await suite.raw.zcard(`socketlock:${name}:queue`)) === 1),
      "the waiter queued",
    );
    await holder.release();
    const held = await next;
    const value = await suite.raw.get(key);
    const believed = !held.signal.aborted;
    assert.ok(
      !believed || (value !== null && JSON.parse(value).owner === held.info.owner),
      `held.signal is live but Redis holds ${value}`,
    );
    await held.release();
  });
});
