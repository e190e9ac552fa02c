// A Redis lock's signal under a release that fails or is slow, and under
// replies that come after the lease they give ran out: a release that
// failed (its reply lost, or never sent) aborts held.signal at once, as
// Redis may already have given the key to another; a slow release leaves
// the deadline watching until it answers; a grant whose reply came too late
// is undone, never handed out; a directly taken lock's LockLostError does
// not speak of a hand-off.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Redis } from "ioredis";
import { lock, LockError, LockLostError, RedisLock, tryLock } from "../mod.ts";
import { adaptRedisClient, type RedisAdapter } from "../lib/redis/client_adapter.ts";
import { describeRedis } from "./_redis_server.ts";
import { redisSuite, stallOnGrant } from "./_redis_suite.ts";
import { sleep } from "./_server_helpers.ts";
import { eventually } from "./_waiting.ts";

const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;

// The scripts' commands, by shape: EVALSHA|EVAL, script, key count, keys, args.
const isRelease = (args: readonly string[]) => args[2] === "4" && args.length === 9;
const isAcquire = (args: readonly string[]) => args[2] === "4" && args.length === 10;
const isExtend = (args: readonly string[]) => args[2] === "1" && args.length === 6;

/**
 * An adapter over `client` whose next command matching `which` is altered
 * once `armed` is set: "lost-reply" runs it but rejects, "not-sent" rejects
 * without sending it, "send-late" sends it only after 600 ms, "no-reply"
 * runs it and never answers, and a number delays its reply by that many ms.
 * A NOSCRIPT rejection passes through: the EVAL that follows is the one
 * altered.
 */
function altered(
  client: Redis,
  which: (args: readonly string[]) => boolean,
  how: "lost-reply" | "not-sent" | "send-late" | "no-reply" | number,
) {
  const base = adaptRedisClient(client);
  const adapter: RedisAdapter & { armed: boolean } = {
    name: "altered",
    armed: false,
    send(args) {
      if (!adapter.armed || !which(args)) return base.send(args);
      if (how === "not-sent") {
        adapter.armed = false;
        return Promise.reject(new Error("Command timed out"));
      }
      if (how === "send-late") {
        adapter.armed = false;
        return sleep(600).then(() => base.send(args));
      }
      return base.send(args).then(async (reply) => {
        adapter.armed = false;
        if (how === "lost-reply") throw new Error("Command timed out");
        if (how === "no-reply") return new Promise(() => {});
        await sleep(how);
        return reply;
      });
    },
    openSubscriber: base.openSubscriber?.bind(base),
  };
  return adapter;
}

describeRedis("Redis kind: failed and slow releases, late grants", () => {
  const suite = redisSuite();
  const ownerOf = async (name: string) => {
    const value = await suite.raw.get(`socketlock:${name}`);
    return value === null ? null : JSON.parse(value).owner;
  };

  for (const mode of ["lost-reply", "not-sent"] as const) {
    test(`RedisLock (${mode}): a failed release aborts the signal at once, and a retry leaves the next holder's key alone`, async () => {
      const redis = altered(suite.client(), isRelease, mode);
      // A lease of 1 s: a loaded machine must not let it run out before the release.
      const obj = new RedisLock(redis, unique("obj"), { ttl: 1_500 });
      await obj.acquire();
      const signal = obj.signal!;
      redis.armed = true;
      await assert.rejects(obj.release(), LockError);
      assert.equal(signal.aborted, true, "whose the lock is can no longer be known");
      assert.ok(signal.reason instanceof LockLostError);
      assert.match(signal.reason.message, /its release\(\) failed/);
      assert.match(String(signal.reason.cause), /Command timed out/);
      assert.notEqual(obj.held, null, "kept, so that release() can be retried");
      assert.equal(await obj.isMine(), false);
      // Someone else takes the key (at once for lost-reply, after the ttl otherwise).
      const other = await lock(obj.name, { redis: suite.client(), ttl: 5_000, timeout: 5_000 });
      try {
        await obj.release();
        assert.equal(obj.held, null);
        assert.equal(await ownerOf(obj.name), other.info.owner, "the retry removed only our own");
      } finally {
        await other.release();
      }
    });
  }

  test("lock(): a failed release aborts held.signal at once, and a retry then resolves", async () => {
    const redis = altered(suite.client(), isRelease, "not-sent");
    const name = unique("plain");
    const held = await lock(name, { redis, ttl: 300 });
    const signal = held.signal;
    redis.armed = true;
    await assert.rejects(held.release(), LockError);
    assert.equal(signal.aborted, true);
    const other = await lock(name, { redis: suite.client(), ttl: 5_000, timeout: 5_000 });
    try {
      await held.release();
      assert.equal(await ownerOf(name), other.info.owner);
    } finally {
      await other.release();
    }
  });

  test("a release that takes longer than the lease aborts held.signal at the lease end, by its timer", async () => {
    const redis = altered(suite.client(), isRelease, "send-late");
    const held = await lock(unique("slow-release"), { redis, ttl: 300 });
    let aborted: unknown = null;
    held.signal.addEventListener("abort", () => aborted = held.signal.reason);
    redis.armed = true;
    const releasing = held.release();
    // The lease is 200 ms; the RELEASE goes out after 600 ms.
    assert.ok(await eventually(() => aborted !== null, 550), "the abort event came");
    assert.ok(aborted instanceof LockLostError, String(aborted));
    await releasing;
  });

  test("tryLock() returns null when its reply came after the lease it gives ran out, while another took the key", async () => {
    const name = unique("late");
    const redis = altered(suite.client(), isAcquire, 500);
    redis.armed = true;
    // ttl 300: the lease is 200 ms; the reply arrives after 500 ms.
    const trying = tryLock(name, { redis, ttl: 300 });
    await sleep(350); // the key expired in Redis
    const other = await tryLock(name, { redis: suite.client(), ttl: 5_000 });
    assert.ok(other, "another caller took the expired key");
    try {
      const held = await trying;
      assert.equal(held, null, `tryLock() handed out a lost lock: ${held?.signal.reason}`);
      assert.equal(
        await ownerOf(name),
        other.info.owner,
        "the late grant's undo left the key alone",
      );
    } finally {
      await other.release();
    }
  });

  test("lock() whose reply came after its lease ran out waits on and returns a live lock", async () => {
    const name = unique("late-wait");
    const redis = altered(suite.client(), isAcquire, 500);
    redis.armed = true;
    const waiting = lock(name, { redis, ttl: 300, timeout: 5_000 });
    await sleep(350);
    const other = await tryLock(name, { redis: suite.client(), ttl: 1_000 });
    assert.ok(other, "another caller took the expired key");
    // Released once the late reply has arrived: the wait goes on until then.
    setTimeout(() => void other.release(), 400);
    const held = await waiting;
    try {
      assert.equal(
        held.signal.aborted,
        false,
        `lock() resolved with a lost lock: ${held.signal.reason}`,
      );
      assert.ok(held.token > other.token);
      assert.equal(await ownerOf(name), held.info.owner);
    } finally {
      await held.release();
    }
  });

  test("a waiter whose claim renewal is confirmed after its lease ran out does not hold the lock on that", async () => {
    const name = unique("late-extend");
    // ttl 1500: a hand-off's claim lease is 1 s; past half of it, the
    // waiter renews before using the lock.
    const holder = await lock(name, { redis: suite.client(), ttl: 1_500 });
    const waiterClient = suite.client();
    // The waiter's process stalls for 600 ms as the grant arrives.
    stallOnGrant(waiterClient, 600);
    // That renewal runs at once, but its reply takes 1.2 s (the lease: 988 ms).
    const redis = altered(waiterClient, isExtend, 1_200);
    const next = lock(name, { redis, ttl: 1_500, timeout: 10_000 });
    assert.ok(
      await eventually(async () => (await suite.raw.zcard(`socketlock:${name}:queue`)) === 1),
      "the waiter queued",
    );
    redis.armed = true;
    await holder.release();
    const held = await next;
    try {
      assert.equal(
        held.signal.aborted,
        false,
        `lock() resolved with a lost lock: ${held.signal.reason}`,
      );
      assert.equal(await ownerOf(name), held.info.owner);
    } finally {
      await held.release();
    }
  });

  test("a directly taken lock whose renewal never answers is lost by its lease, not as a hand-off", async () => {
    const redis = altered(suite.client(), isExtend, "no-reply");
    redis.armed = true;
    const held = await tryLock(unique("msg"), { redis, ttl: 300 });
    assert.ok(held);
    try {
      await sleep(400);
      assert.ok(held.signal.aborted);
      const message = String((held.signal.reason as Error).message);
      assert.doesNotMatch(message, /handed over/, message);
      assert.match(message, /200 ms after it was taken, before its first renewal/, message);
    } finally {
      await held.release();
    }
  });
});
