// A run of quick acquisitions lasts only while its releaser comes back: a
// holder that released within PATIENCE_MS and then went on to other work
// hands the free lock to the first waiter by PASS_ON, instead of leaving it
// free until the waiter's own timer ends the run. The waiter here is a
// place written straight into Redis' queue, with no process behind it: only
// the releaser can hand it the lock, so nothing but PASS_ON can pass.
import { test } from "node:test";
import { setImmediate } from "node:timers";
import assert from "node:assert/strict";
import { lock } from "../mod.ts";
import { adaptRedisClient, type RedisAdapter } from "../lib/redis/client_adapter.ts";
import { ACQUIRE, type LuaScript, PASS_ON, RELEASE, runScript } from "../lib/redis/scripts.ts";
import { describeRedis } from "./_redis_server.ts";
import { redisSuite } from "./_redis_suite.ts";
import { eventually } from "./_waiting.ts";
import { runGrace } from "../lib/redis/_run_grace.ts";
import { redisTarget } from "../lib/redis/redis_target.ts";
import { runtime } from "../lib/runtime/mod.ts";

const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;

async function shaOf(script: LuaScript): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(script.source));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Resolves after the immediates queued before it (the grace's check among them): they run in order. */
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

test("runGrace passes the lock on after a release only if no try followed before the next turn", async () => {
  const passed: string[] = [];
  const grace = runGrace((run) => passed.push(run));
  grace.leftFree("1");
  await nextTurn();
  assert.deepEqual(passed, ["1"], "no try: passed on");

  grace.leftFree("2");
  await Promise.resolve();
  grace.tried(); // a loop's next lock(), in promise callbacks
  await nextTurn();
  assert.deepEqual(passed, ["1"], "came back: the run goes on");

  grace.leftFree("3");
  grace.leftFree("4"); // two releases before the turn ends: one pass-on, of the last run
  await nextTurn();
  assert.deepEqual(passed, ["1", "4"]);

  grace.leftFree("5");
  grace.tried();
  grace.leftFree("6"); // came back, then left it free again without trying
  await nextTurn();
  assert.deepEqual(passed, ["1", "4", "6"]);
});

describeRedis("Redis kind's runs of quick acquisitions", () => {
  const suite = redisSuite();

  const keysOf = (name: string) => {
    const key = `socketlock:${name}`;
    return [key, `${key}:token`, `${key}:queue`, `${key}:waiters`];
  };

  /** Queues `owner` as a waiter of client `clientId`, its place live for 10 s. */
  const queueWaiter = (name: string, owner: string, clientId: string) =>
    runScript(adaptRedisClient(suite.raw), ACQUIRE, keysOf(name), [
      owner,
      "30000",
      `{"owner":"${owner}","pid":1,"host":"h","ttl":30000,"lease":20000`,
      "10000",
      "",
      clientId,
      "30000",
    ]);

  const ownerOf = async (name: string) => {
    const value = await suite.raw.get(keysOf(name)[0]);
    return value === null ? null : JSON.parse(value).owner;
  };

  /**
   * An adapter over a new client that records whether each RELEASE left the
   * lock free for a run, and counts the PASS_ONs run (by EVALSHA, or by EVAL
   * after NOSCRIPT on a fresh server).
   */
  const recording = async () => {
    const base = adaptRedisClient(suite.client());
    const release = [await shaOf(RELEASE), RELEASE.source];
    const passOn = [await shaOf(PASS_ON), PASS_ON.source];
    const inRun: boolean[] = [];
    let passOns = 0;
    const adapter: RedisAdapter = {
      ...base,
      async send(args) {
        const reply = await base.send(args);
        if (release.includes(args[1])) inRun.push(Array.isArray(reply) && reply[0] === 2);
        if (passOn.includes(args[1])) passOns++;
        return reply;
      },
    };
    return { adapter, inRun, passOns: () => passOns };
  };

  test("a holder that released quickly and does not come back hands the lock to the waiter at once", async () => {
    const name = unique("grace");
    const { adapter, inRun, passOns } = await recording();
    // The holder's clock stands still, so its hold counts as 0 ms however
    // slow the machine: its release starts a run every time.
    const frozen = runtime.monotonic();
    const target = redisTarget(
      { ...runtime, monotonic: () => frozen },
      { adapter, name, key: keysOf(name)[0], ttl: 30_000 },
    );
    const attempt = await target.tryAcquire(false);
    assert.ok(attempt.acquired, "the lock was free");
    const waiter = crypto.randomUUID();
    const queued = await queueWaiter(name, waiter, "aa") as unknown[];
    assert.equal(queued[0], 0, "the waiter queued behind the holder");
    await attempt.grant.release();
    assert.deepEqual(inRun, [true], "the release left the lock free for a run");
    assert.ok(
      await eventually(async () => (await ownerOf(name)) === waiter, 5_000),
      "the lock went to the waiter",
    );
    // The grant may be seen on another connection before PASS_ON's reply.
    assert.ok(await eventually(() => Promise.resolve(passOns() === 1)), "by PASS_ON");
    await runScript(adaptRedisClient(suite.raw), RELEASE, keysOf(name), [waiter]);
  });

  test("a holder taking the lock again at once keeps its run: no PASS_ON while it loops", async () => {
    const name = unique("loop");
    const { adapter, inRun, passOns } = await recording();
    const holder = await lock(name, { redis: adapter });
    // A waiter that, handed the lock when the run ends, keeps it 20 ms.
    await runScript(adaptRedisClient(suite.raw), ACQUIRE, keysOf(name), [
      crypto.randomUUID(),
      "30000",
      `{"owner":"waiter","pid":1,"host":"h","ttl":30000,"lease":20000`,
      "10000",
      "",
      "cc",
      "20",
    ]);
    await holder.release();
    for (let i = 0; i < 30; i++) {
      await (await lock(name, { redis: adapter, timeout: 10_000 })).release();
    }
    // Each release was followed by the next lock() call in promise callbacks,
    // before the event loop's next turn; only the last may pass the lock on.
    const runs = inRun.filter(Boolean).length;
    assert.ok(passOns() <= 1, `${passOns()} PASS_ONs after ${runs} releases in a run`);
  });

  test("PASS_ON hands a free lock to the first live waiter, only to end its own run", async () => {
    const name = unique("passon");
    const keys = keysOf(name);
    const adapter = adaptRedisClient(suite.raw);
    assert.equal(await runScript(adapter, PASS_ON, keys, ["1"]), 0, "no lock, no queue");

    const holder = await lock(name, { redis: suite.client() });
    const waiter = crypto.randomUUID();
    await queueWaiter(name, waiter, "bb");
    await suite.raw.hset(keys[3], "@run", "1000");
    assert.equal(await runScript(adapter, PASS_ON, keys, ["1000"]), 0, "held: not passed on");
    assert.equal(await ownerOf(name), holder.info.owner);

    // The holder's lock expires (as if it died): free, with a waiter queued.
    await suite.raw.del(keys[0]);
    assert.equal(
      await runScript(adapter, PASS_ON, keys, ["999"]),
      0,
      "sent late, for a run that is over: a later run is left alone",
    );
    assert.equal(await ownerOf(name), null);
    const heard: string[] = [];
    const sub = suite.client();
    sub.on("message", (_channel: string, message: string) => heard.push(message));
    await sub.subscribe(`${keys[0]}:released:bb`);
    assert.equal(await runScript(adapter, PASS_ON, keys, ["1000"]), 1);
    assert.equal(await ownerOf(name), waiter);
    assert.ok(await eventually(() => Promise.resolve(heard.length === 1)));
    assert.match(heard[0], new RegExp(`^granted ${waiter} \\d+ \\d+$`));
    assert.equal(await runScript(adapter, RELEASE, keys, [waiter]), 1);
    assert.equal(await suite.raw.exists(keys[2], keys[3]), 0, "the queue is gone");
    await holder.release(); // long gone: a no-op
  });
});
