// Review 5 of the Redis kind, each case failing before its fix:
// - a waiter whose queueing try timed out (its reply lost) but ran in Redis
//   held a place it never learned; taking the lock, it stayed queued, and
//   its own release handed the lock to that ghost while a live waiter
//   waited out the 2 s claim time;
// - a lease that ran out before release(), or a key no longer ours at the
//   release, was never reported on held.signal;
// - lock "n:token" used lock "n"'s fencing counter as its key: the two
//   blocked each other for good (such names and keys are refused).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  InvalidLockNameError,
  lock,
  LockError,
  LockLostError,
  RedisLock,
  tryLock,
} from "../mod.ts";
import { adaptRedisClient, type RedisAdapter } from "../lib/redis/client_adapter.ts";
import { ACQUIRE, CANCEL, EXTEND, RELEASE } from "../lib/redis/scripts.ts";
import { describeRedis } from "./_redis_server.ts";
import { redisSuite } from "./_redis_suite.ts";
import { sleep } from "./_server_helpers.ts";
import { eventually } from "./_waiting.ts";

const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;
// EVALSHA sha 4 k1..k4 owner ttl head window place client claim
const isQueueingAcquire = (args: readonly string[]) => args[2] === "4" && args.length === 14;

function stall(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* a paused or busy process */ }
}

describeRedis("Redis kind, review 5", () => {
  const suite = redisSuite();

  test("a waiter that took the lock after an unanswered queueing try leaves no ghost place that its own release hands the lock to", async () => {
    for (const s of [ACQUIRE, CANCEL, EXTEND, RELEASE]) await suite.raw.script("LOAD", s.source);
    const name = unique("ghost");
    const key = `socketlock:${name}`;
    // A holder that crashed: its key will expire (PEXPIRE 1 stands in for the ttl running out).
    await suite.raw.set(
      key,
      JSON.stringify({
        owner: "crashed-holder",
        pid: 1,
        host: "h",
        ttl: 30_000,
        lease: 20_000,
        acquiredAt: 1,
        token: 1,
      }),
      "PX",
      60_000,
    );

    // W's client: its first queueing ACQUIRE runs in Redis but its reply is
    // lost (what ioredis' commandTimeout gives when Redis answers late);
    // W's next command is held until the test lets it go.
    const base = adaptRedisClient(suite.client());
    let stage = 0;
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => openGate = resolve);
    const adapter: RedisAdapter = {
      name: "lossy",
      send(args) {
        if (stage === 0 && isQueueingAcquire(args)) {
          stage = 1;
          return base.send(args).then(() => {
            throw new Error("Command timed out");
          });
        }
        if (stage === 1) return gate.then(() => base.send(args));
        return base.send(args);
      },
      openSubscriber: base.openSubscriber!.bind(base),
    };

    const w = lock(name, { redis: adapter, ttl: 5_000, timeout: 10_000 });
    assert.ok(
      await eventually(async () => stage === 1 && (await suite.raw.zcard(`${key}:queue`)) === 1),
      "the timed-out try queued W",
    );
    // The crashed holder's key expires; then W's next try goes out.
    await suite.raw.pexpire(key, 1);
    await sleep(5);
    stage = 2;
    openGate();
    const held = await w;
    const ghost = await suite.raw.zscore(`${key}:queue`, String(held.info.owner));

    // X: a live waiter, queued behind.
    const x = lock(name, { redis: suite.client(), ttl: 5_000, timeout: 10_000 });
    assert.ok(
      await eventually(async () =>
        (await suite.raw.zcard(`${key}:queue`)) >= (ghost === null ? 1 : 2)
      ),
      "X queued",
    );
    await sleep(20);
    await held.release();
    const releasedAt = performance.now();
    const after = await suite.raw.get(key);
    const afterOwner = after === null ? null : JSON.parse(after).owner;
    const xHeld = await x;
    const waited = performance.now() - releasedAt;
    await xHeld.release();
    assert.equal(ghost, null, "W holds the lock but its owner id is still queued as a waiter");
    assert.notEqual(
      afterOwner,
      held.info.owner,
      "W's release handed the lock to W's own (finished) owner",
    );
    assert.ok(waited < 1_000, `X waited ${waited.toFixed(0)} ms for a lock nobody held`);
  });
  test("held.signal reports a lease that ran out while held, even when first read after release()", async () => {
    const name = unique("paused");
    // ttl 300: lease 200 ms; the key expires 300 ms after the acquisition.
    const held = await lock(name, { redis: suite.client(), ttl: 300 });
    stall(450); // paused past its lease and past the key's expiry
    await held.release();
    assert.equal(await suite.raw.exists(`socketlock:${name}`), 0);
    assert.equal(held.signal.aborted, true);
    assert.ok(held.signal.reason instanceof LockLostError);
    assert.match((held.signal.reason as Error).message, /lease ran out/);
  });

  test("held.signal reports a key that was no longer ours at release()", async () => {
    const name = unique("deleted");
    const held = await lock(name, { redis: suite.client(), ttl: 30_000 });
    await suite.raw.del(`socketlock:${name}`); // an outside DEL (or FLUSHALL)
    await held.release();
    assert.equal(held.signal.aborted, true);
    assert.match((held.signal.reason as Error).message, /no longer held by this owner/);
  });

  test("a name or key ending in :token, :queue, :waiters or :released is refused", async () => {
    const client = suite.client();
    for (const suffix of [":token", ":queue", ":waiters", ":released"]) {
      await assert.rejects(tryLock(`job${suffix}`, { redis: client }), (error: unknown) => {
        assert.ok(error instanceof InvalidLockNameError, String(error));
        assert.match(error.message, /is also the .* of lock "job"/);
        return true;
      });
      assert.throws(() => new RedisLock(client, `job${suffix}`), InvalidLockNameError);
      assert.throws(() => new RedisLock(client, "job", { key: `K${suffix}` }), LockError);
    }
    // Their base names, and the suffixes inside a name, are fine.
    const held = await tryLock(unique("job:token-bucket"), { redis: client });
    assert.ok(held);
    await held.release();
  });
});
