// The other clients the Redis kind recognises: node-redis (every runtime)
// and Bun's built-in RedisClient (under Bun), each excluding an ioredis
// holder, waking on its release through its own pub/sub connection, and
// renewing through its heartbeat.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { createClient } from "redis";
import { lock, RedisLock, tryLock } from "../mod.ts";
import { describeRedis, type RedisServer, startRedisServer } from "./_redis_server.ts";
import { NO_POLLING } from "./_waiting.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;

/** The contract each client must keep, next to an ioredis peer. */
async function exercise(client: unknown, peer: Redis): Promise<void> {
  const name = unique("client");
  // Excludes, and is excluded by, a peer on another client library.
  const held = await lock(name, { redis: client, ttl: 1_000 });
  assert.equal(await tryLock(name, { redis: peer }), null);
  await sleep(2_200); // past two ttls: the heartbeat renews through this client
  assert.equal(held.signal.aborted, false);
  assert.equal(await tryLock(name, { redis: peer }), null);
  await held.release();
  const peerHeld = await lock(name, { redis: peer });
  assert.ok(peerHeld.token > held.token);
  // Waits through this client (its own subscriber, and its place renewed
  // every 100 ms, which would find the lock handed over too): the hand-off
  // comes from the kind's wake-up, never the loop's backoff (a minute, or
  // the 20 s deadline). Loosely timed, for a loaded machine.
  const waiting = lock(name, {
    redis: client,
    timeout: 20_000,
    retry: NO_POLLING,
  });
  await sleep(300);
  const releasedAt = performance.now();
  await peerHeld.release();
  const next = await waiting;
  const handoff = performance.now() - releasedAt;
  assert.ok(handoff < 5_000, `hand-off took ${handoff.toFixed(0)} ms`);
  const l = new RedisLock(client, `${name}-2`);
  assert.equal(await l.tryAcquire(), true);
  assert.equal(await l.isMine(), true);
  assert.equal((await l.info())?.token, l.token);
  await l.release();
  await next.release();
}

describeRedis("Redis kind with other clients", () => {
  let server: RedisServer;
  let peer: Redis;
  before(async () => {
    server = await startRedisServer();
    peer = new Redis({ port: server.port, host: "127.0.0.1" });
  });
  after(async () => {
    peer?.disconnect();
    await server?.stop();
  });

  test("node-redis (redis@5) locks, renews, waits and releases", async () => {
    const client = createClient({ url: `redis://127.0.0.1:${server.port}` });
    client.on("error", () => {});
    await client.connect();
    try {
      await exercise(client, peer);
    } finally {
      await client.close();
    }
  });

  const bun = (globalThis as { Bun?: { RedisClient: new (url: string) => { close(): void } } }).Bun;
  test("Bun's RedisClient locks, renews, waits and releases (runs under Bun only)", {
    skip: !bun && "Bun's RedisClient exists only under Bun",
  }, async () => {
    if (!bun) return;
    const client = new bun.RedisClient(`redis://127.0.0.1:${server.port}`);
    try {
      await exercise(client, peer);
    } finally {
      client.close();
    }
  });
});
