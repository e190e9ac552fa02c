// A release() called twice (explicitly, then by Symbol.asyncDispose at the
// end of an `await using` block) frees the in-process slot once, so waiters
// still get the lock one at a time, in FIFO order. One that failed (Redis
// unreachable) can be called again, and releases then.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { lock, LockError, RedisLock } from "../mod.ts";
import { adaptRedisClient, type RedisAdapter } from "../lib/redis/client_adapter.ts";
import { describeRedis } from "./_redis_server.ts";
import { redisSuite } from "./_redis_suite.ts";
import { tempDir } from "./_processes.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;

describe("a release() called more than once frees the in-process slot once", () => {
  for (const kind of ["socket", "port"] as const) {
    test(`${kind} kind: waiters queued behind a holder that releases twice get the lock in FIFO order`, async () => {
      const dir = await tempDir();
      try {
        const name = unique("twice");
        const options = { kind, dir };
        const first = await lock(name, options);
        const order: number[] = [];
        let inside = 0;
        const waiting = [1, 2, 3].map((n) =>
          lock(name, { ...options, timeout: 10_000 }).then(async (held) => {
            inside++;
            order.push(n);
            assert.equal(inside, 1, "one holder at a time");
            await sleep(100);
            inside--;
            await held.release();
          })
        );
        await sleep(50);
        // An explicit release, then `await using`'s dispose at the block's end.
        await first.release();
        await first[Symbol.asyncDispose]();
        await Promise.all(waiting);
        assert.deepEqual(order, [1, 2, 3]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});

describeRedis("a release() that failed can be called again", () => {
  const suite = redisSuite();

  /** The suite's client, whose next release script fails when told to. */
  function flakyAdapter(): RedisAdapter & { failNextRelease: boolean } {
    const base = adaptRedisClient(suite.client());
    const adapter = {
      name: "flaky",
      failNextRelease: false,
      send(args: readonly string[]) {
        // The release script: 4 keys, and owner + held-for as its arguments.
        if (adapter.failNextRelease && args[2] === "4" && args.length === 9) {
          adapter.failNextRelease = false;
          return Promise.reject(new Error("Connection is closed."));
        }
        return base.send(args);
      },
      openSubscriber: base.openSubscriber?.bind(base),
    };
    return adapter;
  }

  test("lock(): the retry releases the key; the in-process slot passed on at the failure", async () => {
    const redis = flakyAdapter();
    const name = unique("retry");
    const held = await lock(name, { kind: "redis", redis });
    redis.failNextRelease = true;
    await assert.rejects(held.release(), LockError);
    assert.ok(await suite.raw.exists(`socketlock:${name}`), "still held in Redis");
    // Another call of this process gets past the in-process slot and waits
    // on the lock itself, which the retry frees.
    const next = lock(name, { kind: "redis", redis, timeout: 10_000 });
    await sleep(100);
    await held.release();
    const taken = await next;
    assert.ok(taken.token > held.token);
    await taken.release();
    await held.release(); // succeeded once: nothing more
    assert.equal(await suite.raw.exists(`socketlock:${name}`), 0);
  });

  test("RedisLock keeps a lock whose release failed, so that release() can be tried again", async () => {
    const redis = flakyAdapter();
    const lockObject = new RedisLock(redis, unique("object"));
    await lockObject.acquire();
    redis.failNextRelease = true;
    await assert.rejects(lockObject.release(), LockError);
    assert.notEqual(lockObject.token, null, "still held by the object");
    await assert.rejects(lockObject.acquire(), /already held/);
    await lockObject.release();
    assert.equal(lockObject.token, null);
    assert.equal(await suite.raw.exists(lockObject.key), 0);
    await lockObject.acquire();
    await lockObject.release();
  });
});
