// The Redis kind's wait queue, against a real redis-server: waiters are
// served in arrival order, a release hands the lock to one waiter, a
// holder that takes the lock again at once cannot keep a waiter out, and
// waiters that give up or die leave no one stuck behind them.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type HeldLock,
  lock,
  LockAbortedError,
  LockTimeoutError,
  RedisLock,
  tryLock,
} from "../mod.ts";
import { adaptRedisClient, type RedisAdapter } from "../lib/redis/client_adapter.ts";
import { ACQUIRE, CANCEL, RELEASE, runScript } from "../lib/redis/scripts.ts";
import { forceReleaseIfStale } from "../lib/redis/redis_target.ts";
import { type Child, fixture, spawnScript } from "./_processes.ts";
import { describeRedis } from "./_redis_server.ts";
import { redisSuite } from "./_redis_suite.ts";
import { eventually } from "./_waiting.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;

describeRedis("Redis kind's wait queue", () => {
  const kids: Child[] = [];
  const suite = redisSuite({}, () => {
    for (const kid of kids) kid.process.kill("SIGKILL");
  });
  const client = () => suite.client();
  const queued = (name: string) => suite.raw.zcard(`socketlock:${name}:queue`);
  const queueKeys = (name: string) =>
    suite.raw.exists(`socketlock:${name}:queue`, `socketlock:${name}:waiters`);

  test("waiters on different clients get the lock in the order they came, each from the release before", async () => {
    const name = unique("fifo");
    const holder = await lock(name, { redis: client() });
    const order: string[] = [];
    const tokens: number[] = [];
    const wait = async (label: string) => {
      const held = await lock(name, { redis: client(), timeout: 20_000 });
      order.push(label);
      tokens.push(held.token);
      await sleep(30); // long enough that the next waiter's turn has come
      await held.release();
    };
    const waiting: Promise<void>[] = [];
    for (const label of ["first", "second", "third", "fourth"]) {
      waiting.push(wait(label));
      // Queued (a waiter queues as soon as it tries again) before the next comes.
      const count = order.length + waiting.length;
      assert.ok(await eventually(async () => (await queued(name)) >= count), `${label} queued`);
    }
    const info = await new RedisLock(suite.raw, name).info();
    assert.equal(info?.waiters, 4);
    await holder.release();
    await Promise.all(waiting);
    assert.deepEqual(order, ["first", "second", "third", "fourth"]);
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1], `${tokens}`);
    assert.equal(await queueKeys(name), 0, "the queue is gone with its last waiter");
  });

  test("a holder that releases and takes the lock again at once cannot keep a waiter out", async () => {
    const name = unique("barge");
    const a = client();
    let stop = false;
    let rounds = 0;
    const looping = (async () => {
      const deadline = performance.now() + 10_000;
      while (!stop && performance.now() < deadline) {
        const held = await lock(name, { redis: a, timeout: 20_000 });
        rounds++;
        await held.release();
      }
    })();
    assert.ok(await eventually(() => Promise.resolve(rounds > 20)), "the loop runs");
    const startedAt = rounds;
    const held = await lock(name, { redis: client(), timeout: 8_000 });
    stop = true;
    await held.release();
    await looping;
    assert.ok(rounds > startedAt, "the loop went on while the waiter waited");
  });

  test("tryLock() on a held lock leaves no place in the queue", async () => {
    const name = unique("try");
    const holder = await lock(name, { redis: client() });
    const other = client();
    for (let i = 0; i < 5; i++) assert.equal(await tryLock(name, { redis: other }), null);
    assert.equal(await new RedisLock(other, name).tryAcquire(), false);
    await sleep(20);
    assert.equal(await queueKeys(name), 0);
    await holder.release();
  });

  test("a waiter that times out or is aborted leaves the queue, and the next waiter gets the lock", async () => {
    const name = unique("giveup");
    const holder = await lock(name, { redis: client() });
    // Long enough, on a loaded machine, to be seen queued before it gives up.
    const timedOut = lock(name, { redis: client(), timeout: 1_000 }).catch((e) => e);
    const controller = new AbortController();
    const aborted = lock(name, { redis: client(), signal: controller.signal }).catch((e) => e);
    assert.ok(await eventually(async () => (await queued(name)) === 2), "both queued");
    controller.abort();
    assert.ok((await timedOut) instanceof LockTimeoutError);
    assert.ok((await aborted) instanceof LockAbortedError);
    assert.ok(await eventually(async () => (await queued(name)) === 0), "both left");
    const next = lock(name, { redis: client(), timeout: 10_000 });
    assert.ok(await eventually(async () => (await queued(name)) === 1), "the next one queued");
    await holder.release();
    const held = await next;
    assert.ok(held.token > holder.token);
    await held.release();
    assert.equal(await queueKeys(name), 0);
  });

  test("a waiter killed while queued is skipped once its place runs out, not waited for until a ttl", async () => {
    const name = unique("dead");
    const holder = await lock(name, { redis: client() });
    const child = spawnScript("node", fixture("redis_waiter.ts"), [
      String(suite.server.port),
      name,
    ]);
    kids.push(child);
    await child.waitFor("waiting");
    assert.ok(await eventually(async () => (await queued(name)) === 1, 10_000), "child queued");
    child.process.kill("SIGKILL");
    await child.done;
    const next = lock(name, { redis: client(), timeout: 20_000 });
    assert.ok(await eventually(async () => (await queued(name)) === 2), "queued behind it");
    await sleep(700); // the dead waiter's place lasts 500 ms after its last renewal
    await holder.release();
    const startedAt = performance.now();
    const held = await next;
    const took = performance.now() - startedAt;
    await held.release();
    // The dead waiter, had it been given the lock, would have kept it 30 s.
    assert.ok(took < 10_000, `took ${took.toFixed(0)} ms`);
    assert.equal(await queueKeys(name), 0);
  });

  test("a waiter killed just after renewing its place is handed the lock only for its claim time, not a ttl", async () => {
    const name = unique("claim");
    const key = `socketlock:${name}`;
    const holder = await lock(name, { redis: client() });
    const child = spawnScript("node", fixture("redis_waiter.ts"), [
      String(suite.server.port),
      name,
    ]);
    kids.push(child);
    await child.waitFor("waiting");
    assert.ok(await eventually(async () => (await queued(name)) === 1, 10_000), "child queued");
    const next = lock(name, { redis: client(), timeout: 20_000 });
    assert.ok(await eventually(async () => (await queued(name)) === 2), "queued behind it");
    // SIGKILL takes effect at once: the child runs no more code. Its exit is
    // awaited only after the release, which must come while the dead
    // waiter's place (500 ms from its last renewal, every 100 ms) is still
    // live; waiting for the child's "close" first took that margin away on
    // a loaded machine.
    child.process.kill("SIGKILL");
    // At once: the dead waiter's place is still live, so it is handed the lock.
    // Timed from before the release, so before the claim's 2 s began: load
    // can only lengthen what is measured.
    const startedAt = performance.now();
    await holder.release();
    await child.done;
    const handed = JSON.parse((await suite.raw.get(key))!);
    assert.equal(handed.claim, 2_000, "handed over for the claim time");
    assert.ok((await suite.raw.pttl(key)) <= 2_000);
    assert.equal(await forceReleaseIfStale(adaptRedisClient(suite.raw), key, 0), false);
    const held = await next;
    const took = performance.now() - startedAt;
    assert.notEqual(held.info.owner, handed.owner);
    // Not passed on at once (the claim held it), nor kept for the 30 s ttl;
    // the upper bound is loose, for a loaded machine.
    assert.ok(took > 1_000 && took < 15_000, `the lock came back after ${took.toFixed(0)} ms`);
    await held.release();
  });

  test("a live waiter handed the lock renews it early: the claim mark goes and the ttl is full", async () => {
    const name = unique("renew");
    const key = `socketlock:${name}`;
    const holder = await lock(name, { redis: client() });
    const next = lock(name, { redis: client(), ttl: 30_000, timeout: 10_000 });
    assert.ok(await eventually(async () => (await queued(name)) === 1), "queued");
    await holder.release();
    const held = await next;
    assert.ok(
      await eventually(async () => !(await suite.raw.get(key))!.includes('"claim"'), 3_000),
    );
    assert.ok((await suite.raw.pttl(key)) > 25_000, "renewed to the full ttl");
    assert.equal(held.signal.aborted, false);
    await sleep(1_500); // past the claim lease the holder first relied on
    assert.equal(held.signal.aborted, false);
    assert.equal(JSON.parse((await suite.raw.get(key))!).owner, held.info.owner);
    await held.release();
    assert.equal(await suite.raw.exists(key), 0);
  });

  test("a lock handed to a waiter as it gives up is passed on to the next waiter", async () => {
    const name = unique("cancel");
    const key = `socketlock:${name}`;
    const keys = [key, `${key}:token`, `${key}:queue`, `${key}:waiters`];
    const channel = `${key}:released`;
    const adapter = adaptRedisClient(suite.raw);
    const holder = await lock(name, { redis: client() });
    const queue = (owner: string, clientId: string) =>
      runScript(adapter, ACQUIRE, keys, [
        owner,
        "30000",
        `{"owner":"${owner}","pid":1,"host":"h","ttl":30000,"lease":20000`,
        "5000",
        "",
        clientId,
        "30000",
      ]);
    const owners = [crypto.randomUUID(), crypto.randomUUID()];
    await queue(owners[0], "aa");
    await queue(owners[1], "bb");
    const heard: string[] = [];
    const sub = client();
    sub.on("message", (ch: string, message: string) => heard.push(`${ch.slice(-2)} ${message}`));
    await sub.subscribe(`${channel}:aa`, `${channel}:bb`);
    await sleep(20); // the first waiter's turn has come
    await holder.release();
    assert.equal(JSON.parse((await suite.raw.get(key))!).owner, owners[0], "handed to the first");
    await sleep(20);
    // The first waiter gives up just as it was handed the lock.
    assert.equal(await runScript(adapter, CANCEL, keys, [owners[0]]), 1);
    assert.equal(JSON.parse((await suite.raw.get(key))!).owner, owners[1], "passed to the second");
    assert.ok(await eventually(() => Promise.resolve(heard.length === 2)));
    assert.match(heard[0], new RegExp(`^aa granted ${owners[0]} \\d+ \\d+$`));
    assert.match(heard[1], new RegExp(`^bb granted ${owners[1]} \\d+ \\d+$`));
    assert.equal(await runScript(adapter, RELEASE, keys, [owners[1]]), 1);
    assert.equal(await suite.raw.exists(key), 0);
    assert.equal(await queueKeys(name), 0);
  });

  test("eight waiters on two clients all get their turns, one holder at a time", async () => {
    const name = unique("rounds");
    const shared = [client(), client()];
    let inside = 0;
    let maxInside = 0;
    const counts = new Map<number, number>();
    await Promise.all(Array.from({ length: 8 }, async (_, i) => {
      for (let round = 0; round < 5; round++) {
        const held: HeldLock = await lock(name, { redis: shared[i % 2], timeout: 20_000 });
        inside++;
        maxInside = Math.max(maxInside, inside);
        await sleep(1);
        held.signal.throwIfAborted();
        inside--;
        counts.set(i, (counts.get(i) ?? 0) + 1);
        await held.release();
      }
    }));
    assert.equal(maxInside, 1);
    for (let i = 0; i < 8; i++) assert.equal(counts.get(i), 5);
    assert.equal(await queueKeys(name), 0);
  });

  test("a run of quick acquisitions dated in the future (Redis' clock stepped back) lets no newcomer overtake", async () => {
    const name = unique("stepback");
    const holder = await lock(name, { redis: client() });
    const waiting = lock(name, { redis: client(), timeout: 5_000 });
    assert.ok(await eventually(async () => (await queued(name)) === 1), "the waiter queued");
    const [seconds] = await suite.raw.time();
    await suite.raw.hset(
      `socketlock:${name}:waiters`,
      "@run",
      String(Number(seconds) * 1000 + 60_000),
    );
    await holder.release();
    assert.equal(await tryLock(name, { redis: client() }), null, "the release went to the waiter");
    await (await waiting).release();
  });

  test("a tryLock never queues, even right after its client waited on the same lock", async () => {
    const name = unique("trylock");
    const base = adaptRedisClient(client());
    const sent: (readonly string[])[] = [];
    const adapter: RedisAdapter = {
      ...base,
      send(args) {
        sent.push(args);
        return base.send(args);
      },
    };
    // The client waits once: its grants channel stays subscribed a while after.
    const holder = await lock(name, { redis: client() });
    const waiting = lock(name, { redis: adapter, timeout: 5_000 });
    assert.ok(await eventually(async () => (await queued(name)) === 1), "the waiter queued");
    await holder.release();
    await (await waiting).release();
    const other = await lock(name, { redis: client() });
    sent.length = 0;
    assert.equal(await tryLock(name, { redis: adapter }), null);
    // EVALSHA sha 4 <keys> owner ttl head: 10 words; a try that queues sends 14.
    const acquires = sent.filter((args) => args[0] === "EVALSHA" && args[2] === "4");
    assert.deepEqual(acquires.map((args) => args.length), [10]);
    assert.equal(await queued(name), 0);
    await other.release();
  });
});
