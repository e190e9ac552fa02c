// A Redis client's command timeout during a wait: an acquire that timed out
// counts as "not acquired yet", and lock() (or RedisLock#acquire) waits on
// until it gets the lock or its own timeout ends it. The timed-out command
// may still run in Redis (here: held back by CLIENT PAUSE, then run): a
// lock it took is taken up by the wait, never left to a silent holder, and
// a wait that gives up leaves nothing of its own behind. A single try
// (tryLock) still fails on a command timeout, as the README says.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Redis } from "ioredis";
import { lock, LockError, LockTimeoutError, RedisLock, tryLock } from "../mod.ts";
import { ACQUIRE, CANCEL, EXTEND, PATIENCE_MS } from "../lib/redis/scripts.ts";
import { describeRedis } from "./_redis_server.ts";
import { redisSuite, stallOnGrant } from "./_redis_suite.ts";
import { sleep } from "./_server_helpers.ts";
import { eventually } from "./_waiting.ts";

const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;

/** The client's rejections that were command timeouts, counted as they happen. */
function countTimeouts(client: Redis): { count: number } {
  const seen = { count: 0 };
  const call = client.call.bind(client) as (...args: unknown[]) => Promise<unknown>;
  (client as unknown as { call: typeof call }).call = (...args) =>
    call(...args).catch((error: Error) => {
      if (/timed out/.test(error.message)) seen.count++;
      throw error;
    });
  return seen;
}

describeRedis("Redis kind: a command timeout while waiting", () => {
  const suite = redisSuite();
  // A client under test: each of its commands gives up after 100 ms.
  const timingOut = () => {
    const client = suite.client({ commandTimeout: 100 });
    return { client, timeouts: countTimeouts(client) };
  };
  const key = (name: string) => `socketlock:${name}`;
  const ownerOf = async (name: string) => {
    const value = await suite.raw.get(key(name));
    return value === null ? null : JSON.parse(value).owner;
  };
  // Redis runs no script (nor any other write) for `ms`: commands sent
  // meanwhile time out in the client, and run once the pause ends.
  const pauseWrites = (ms: number) => suite.raw.call("CLIENT", "PAUSE", String(ms), "WRITE");
  // A script Redis must load first would be paused as a NOSCRIPT and an EVAL.
  const loadScripts = async () => {
    for (const script of [ACQUIRE, CANCEL, EXTEND]) {
      await suite.raw.script("LOAD", script.source);
    }
  };
  // A write of our own waits out the pause; then what was held back runs.
  const pauseEnded = async () => {
    await suite.raw.set(unique("after-pause"), "1", "PX", 1_000);
    await sleep(200);
  };

  for (const api of ["lock()", "RedisLock#acquire"] as const) {
    test(`${api}: an acquire that times out while queued does not end the wait; the lock comes at the release`, async () => {
      await loadScripts();
      const name = unique("queued");
      const holder = await lock(name, { redis: suite.client(), ttl: 5_000 });
      const { client, timeouts } = timingOut();
      const obj = new RedisLock(client, name, { ttl: 5_000 });
      const waiting = api === "lock()"
        ? lock(name, { redis: client, ttl: 5_000, timeout: 10_000 })
        : obj.acquire({ timeout: 10_000 }).then(() => obj.held!);
      let ended: unknown = null;
      waiting.catch((error) => ended = error);
      try {
        assert.ok(
          await eventually(async () => (await suite.raw.zcard(`${key(name)}:queue`)) === 1),
          "the waiter queued",
        );
        // The waiter renews its place every 100 ms: those tries time out.
        await pauseWrites(400);
        assert.ok(await eventually(() => timeouts.count > 0), "an acquire timed out");
        await sleep(500);
        assert.equal(ended, null, `the wait ended on a command timeout: ${ended}`);
      } finally {
        await holder.release();
      }
      const held = await waiting;
      try {
        assert.equal(held.signal.aborted, false, `a lost lock: ${held.signal.reason}`);
        assert.equal(await ownerOf(name), held.info.owner);
        assert.ok(held.token > holder.token);
        if (api === "RedisLock#acquire") assert.equal(await obj.isMine(), true);
        assert.equal(await tryLock(name, { redis: suite.client(), ttl: 5_000 }), null);
      } finally {
        await held.release();
      }
    });
  }

  test("lock(): an acquire that took the free lock but timed out is taken up by the wait, as the same owner", async () => {
    await loadScripts();
    const name = unique("free");
    const { client, timeouts } = timingOut();
    // The first try is held back past its timeout, then runs and takes the
    // lock: the wait's next try finds it ours.
    await pauseWrites(300);
    const held = await lock(name, { redis: client, ttl: 5_000, timeout: 5_000 });
    try {
      assert.ok(timeouts.count > 0, "an acquire timed out");
      assert.equal(held.signal.aborted, false, `a lost lock: ${held.signal.reason}`);
      const value = JSON.parse((await suite.raw.get(key(name)))!);
      assert.equal(value.owner, held.info.owner);
      assert.equal(value.token, held.token, "the token of the acquisition that took the key");
      assert.equal(await suite.raw.exists(`${key(name)}:queue`), 0, "no waiter left queued");
    } finally {
      await held.release();
    }
    assert.equal(await suite.raw.exists(key(name)), 0, "the release freed it: no silent holder");
  });

  test("lock(): a grant's renewal that times out does not end the wait; the next try, as the same owner, takes the lock up", async () => {
    await loadScripts();
    const name = unique("claim");
    // ttl 3000: a hand-off's claim lease is 2 s; past half of it, the
    // waiter renews before using the lock. The stall is past half by 200 ms
    // and short of the end by 800 ms, which a loaded machine may add.
    const holder = await lock(name, { redis: suite.client(), ttl: 3_000 });
    const { client, timeouts } = timingOut();
    // The waiter's process stalls for 1.2 s as the grant arrives.
    stallOnGrant(client, 1_200);
    // Its renewal is then held back past its timeout, and runs.
    let armed = false;
    const call = client.call.bind(client) as (...args: string[]) => Promise<unknown>;
    (client as unknown as { call: typeof call }).call = async (...args) => {
      if (armed && args[2] === "1" && args.length === 6) {
        armed = false;
        await pauseWrites(300);
      }
      return call(...args);
    };
    const next = lock(name, { redis: client, ttl: 3_000, timeout: 10_000 });
    assert.ok(
      await eventually(async () => (await suite.raw.zcard(`${key(name)}:queue`)) === 1),
      "the waiter queued",
    );
    // A hold under PATIENCE_MS leaves the lock free for the waiter's own try
    // (no hand-off, so no claim to renew): hold it longer.
    await sleep(4 * PATIENCE_MS);
    armed = true;
    await holder.release();
    const held = await next;
    try {
      assert.equal(armed, false, "the renewal was sent");
      assert.ok(timeouts.count > 0, "a command timed out");
      assert.equal(held.signal.aborted, false, `a lost lock: ${held.signal.reason}`);
      assert.equal(await ownerOf(name), held.info.owner);
      assert.ok(held.token > holder.token);
    } finally {
      await held.release();
    }
  });

  test("lock(): a wait whose timeout ends while its acquires time out throws LockTimeoutError and leaves nothing behind", async () => {
    await loadScripts();
    const name = unique("gives-up");
    const { client, timeouts } = timingOut();
    await pauseWrites(600);
    await assert.rejects(
      lock(name, { redis: client, ttl: 5_000, timeout: 250 }),
      LockTimeoutError,
    );
    assert.ok(timeouts.count > 0, "an acquire timed out");
    // Once the pause ends, the held-back tries run (the first takes the
    // free lock), then the undoing by owner sent when the wait ended.
    await pauseEnded();
    assert.equal(await suite.raw.exists(`${key(name)}:token`), 1, "an acquire ran in Redis");
    assert.equal(await suite.raw.exists(key(name), `${key(name)}:queue`), 0, "nothing left");
    const other = await tryLock(name, { redis: suite.client(), ttl: 5_000 });
    assert.ok(other, "another caller takes the lock");
    await other.release();
  });

  test("tryLock() still fails on a command timeout, and leaves nothing behind", async () => {
    await loadScripts();
    const name = unique("try");
    const { client } = timingOut();
    await pauseWrites(300);
    await assert.rejects(
      tryLock(name, { redis: client, ttl: 5_000 }),
      (error) => error instanceof LockError && /timed out/.test(error.message),
    );
    await pauseEnded();
    assert.equal(await suite.raw.exists(`${key(name)}:token`), 1, "the acquire ran in Redis");
    assert.equal(await suite.raw.exists(key(name)), 0, "the lock it took was undone");
  });
});
