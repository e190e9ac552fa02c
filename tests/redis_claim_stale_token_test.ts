// A waiter whose try got no reply (a command timeout) must not take up a
// grant it hears afterwards on its token alone: that try may run later and
// queue the same owner again, so a later grant can reach it. The old code
// renewed the heard grant with EXTEND (owner-checked only) and kept the
// heard token: after the interleaving below it held the lock with a fencing
// token lower than the previous holder's.
//
// The waiter's command connection is slow (commands held back, in order, by a
// gate; each gives up after COMMAND_TIMEOUT_MS like ioredis' commandTimeout),
// while its pub/sub connection is fine. The interleaving, all by Redis:
//   1. W queued as owner O (try T1 confirmed).
//   2. W's refresh try T2 is sent and held back (it will time out: unanswered).
//   3. H releases: grant G1 to O (token t1), PX claim. W hears G1 by pub/sub.
//   4. T2 times out. W's next command is held back too.
//   5. O's claim runs out unused; X takes the lock: token t2 > t1.
//   6. T2 runs: O queues again. X releases: grant G2 to O (token t3 > t2).
//   7. W's command runs on G2's key: W must hold it with token t3.
import { test } from "node:test";
import assert from "node:assert/strict";
import { lock } from "../mod.ts";
import { ACQUIRE, CANCEL, EXTEND, INSPECT, PASS_ON, RELEASE } from "../lib/redis/scripts.ts";
import { adaptRedisClient, type RedisAdapter } from "../lib/redis/client_adapter.ts";
import { describeRedis } from "./_redis_server.ts";
import { redisSuite } from "./_redis_suite.ts";
import { eventually } from "./_waiting.ts";

const TTL = 600; // lease 400, refresh 100, claim = min(600, 2000) = 600
const COMMAND_TIMEOUT_MS = 800;

interface Held {
  args: readonly string[];
  done: boolean;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

describeRedis("claim() after an EXTEND keeps a stale grant's token", () => {
  const suite = redisSuite();

  test("the lock taken up through claim() carries the token Redis gave it, not an older one", async () => {
    const name = `r14-claim-${crypto.randomUUID().slice(0, 8)}`;
    const key = `socketlock:${name}`;
    for (const script of [ACQUIRE, CANCEL, EXTEND, INSPECT, PASS_ON, RELEASE]) {
      await suite.raw.script("LOAD", script.source);
    }
    const wc = suite.client();
    const real = adaptRedisClient(wc);
    let closed = false;
    const gate: Held[] = [];
    const gated: RedisAdapter = {
      name: "gated ioredis",
      send(args) {
        if (!closed) return real.send(args);
        return new Promise((resolve, reject) => {
          const item: Held = { args, done: false, resolve, reject };
          gate.push(item);
          setTimeout(() => {
            if (item.done) return;
            item.done = true;
            reject(new Error("Command timed out"));
          }, COMMAND_TIMEOUT_MS);
        });
      },
      openSubscriber: () => real.openSubscriber!(),
    };
    // Sends the oldest held-back command now (its reply is used only if it
    // has not timed out yet).
    const releaseOne = async () => {
      const item = gate.shift()!;
      const result = await real.send(item.args).then(
        (value) => ({ ok: true as const, value }),
        (error) => ({ ok: false as const, error }),
      );
      if (item.done) return;
      item.done = true;
      if (result.ok) item.resolve(result.value);
      else item.reject(result.error);
    };
    const open = async () => {
      closed = false;
      while (gate.length) await releaseOne();
    };

    const h = await lock(name, { redis: suite.client(), ttl: TTL });
    const waiting = lock(name, { redis: gated, ttl: TTL, timeout: 8_000 });
    waiting.catch(() => {});
    assert.ok(await eventually(async () => (await suite.raw.zcard(`${key}:queue`)) === 1, 3_000));
    await new Promise((r) => setTimeout(r, 150)); // a refresh or two: confirmed, subscribed

    // 2. The next refresh try is held back.
    closed = true;
    assert.ok(await eventually(() => gate.length === 1, 2_000), "W's refresh try held back");
    // 3. H releases: G1 to W's owner.
    await h.release();
    const g1 = JSON.parse((await suite.raw.get(key))!);
    // 5. G1's claim runs out unused; X takes the lock.
    assert.ok(await eventually(async () => (await suite.raw.get(key)) === null, 3_000));
    const x = await lock(name, { redis: suite.client(), ttl: TTL, timeout: 0 });
    assert.ok(x.token > g1.token);
    // 4. T2 timed out; W's next command (it was claim()'s EXTEND of G1;
    // now an ACQUIRE as the same owner, which asks Redis) is held back.
    assert.ok(await eventually(() => gate.length === 2, 3_000), "W's next command held back");
    // 6. T2 runs (O queues again); X releases: G2 to O.
    await releaseOne();
    await x.release();
    const g2 = JSON.parse((await suite.raw.get(key))!);
    assert.equal(g2.owner, g1.owner, "the lock was handed to W's owner a second time");
    // 7. W's command runs on G2's key (an EXTEND succeeded there).
    await releaseOne();
    await open();
    const w = await waiting;
    try {
      assert.equal(w.token, g2.token, "W's token is the one Redis stores");
      assert.ok(
        w.token > x.token,
        `W holds the lock with token ${w.token}, below the previous holder's ${x.token} ` +
          `(Redis' value says ${g2.token})`,
      );
    } finally {
      await w.release().catch(() => {});
    }
  });
});
