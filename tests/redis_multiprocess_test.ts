// The Redis kind across real processes of all three runtimes, against a
// real redis-server: exclusion, crash hand-over by ttl, and a paused holder
// that must see its loss before doing any work.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import process from "node:process";
import { Redis } from "ioredis";
import { lock, RedisLock } from "../mod.ts";
import {
  type Child,
  childRuntimes,
  fixture,
  inOneRunner,
  RUNTIMES,
  spawnScript,
  tempDir,
} from "./_processes.ts";
import { describeRedis, type RedisServer, startRedisServer } from "./_redis_server.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;
// Through process.kill: Deno's ChildProcess.kill() records any signal as the
// one the child ended by, even SIGSTOP.
const signal = (child: Child, name: "SIGSTOP" | "SIGCONT") => process.kill(child.pid, name);

describeRedis("Redis kind across processes", () => {
  let server: RedisServer;
  let redis: Redis;
  const dirs: string[] = [];
  const kids: Child[] = [];
  before(async () => {
    server = await startRedisServer();
    redis = new Redis({ port: server.port, host: "127.0.0.1" });
  });
  after(async () => {
    for (const kid of kids) kid.process.kill("SIGKILL");
    redis?.disconnect();
    await server?.stop();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  function holder(runtime: (typeof RUNTIMES)[number], name: string, ttl: number): Child {
    const child = spawnScript(runtime, fixture("redis_holder.ts"), [
      String(server.port),
      name,
      String(ttl),
    ]);
    kids.push(child);
    return child;
  }

  // Its children span every runtime: one runner of three is enough.
  if (inOneRunner(2)) {
    test("6 processes, two per runtime, each adding 40 under the lock, count exactly 240", async () => {
      const dir = await tempDir();
      dirs.push(dir);
      const counter = `${dir}/counter`;
      await writeFile(counter, "0");
      const name = unique("counter");
      const workers = RUNTIMES.flatMap((rt) =>
        [0, 1].map(() =>
          spawnScript(rt, fixture("redis_worker.ts"), [String(server.port), name, counter, "40"])
        )
      );
      kids.push(...workers);
      const results = await Promise.all(workers.map((w) => w.done));
      for (const result of results) assert.equal(result.code, 0, result.stderr);
      assert.equal(Number(await readFile(counter, "utf8")), 240);
      const tokens = (await readFile(`${counter}.tokens`, "utf8")).trim().split("\n").map(Number);
      assert.equal(tokens.length, 240);
      for (let i = 1; i < tokens.length; i++) {
        assert.ok(tokens[i] > tokens[i - 1], `token ${i}: ${tokens[i - 1]} then ${tokens[i]}`);
      }
      assert.equal(
        Number(await redis.get(`socketlock:${name}:token`)),
        tokens.at(-1),
        "the counter holds the last token",
      );
      assert.equal(
        await redis.exists(`socketlock:${name}:queue`, `socketlock:${name}:waiters`),
        0,
        "no waiter is left queued",
      );
    });
  }

  for (const rt of childRuntimes(0)) {
    test(`a SIGKILLed ${rt} holder's lock passes to a waiter when its ttl runs out`, async () => {
      const name = unique(`crash-${rt}`);
      const child = holder(rt, name, 1_000);
      await child.waitFor("held");
      const firstToken = Number(child.stdout().match(/held (\d+)/)![1]);
      const waiting = lock(name, { redis, timeout: 10_000 });
      await sleep(100);
      const killedAt = performance.now();
      child.process.kill("SIGKILL");
      const held = await waiting;
      const took = performance.now() - killedAt;
      await held.release();
      assert.ok(took < 3_000, `took ${took.toFixed(0)} ms with a 1000 ms ttl`);
      assert.ok(held.token > firstToken);
    });
  }

  for (const rt of childRuntimes(1)) {
    test(`a ${rt} holder paused past its ttl sees held.signal aborted before its next step, while another holds the lock`, async () => {
      const name = unique(`paused-${rt}`);
      const child = holder(rt, name, 600);
      await child.waitFor("held");
      signal(child, "SIGSTOP");
      let next;
      try {
        // The lock passes on by ttl while the holder is frozen.
        next = await lock(name, { redis, timeout: 5_000 });
        await sleep(300);
      } finally {
        signal(child, "SIGCONT");
      }
      try {
        await child.waitFor("gap", 10_000);
        assert.match(child.stdout(), /aborted=true reason=LockLostError/);
        assert.equal(JSON.parse((await redis.get(`socketlock:${name}`))!).owner, next.info.owner);
      } finally {
        await next.release();
      }
    });
  }

  test("forceReleaseIfStale() breaks a paused holder's lock only after its lease, and the holder knows", async () => {
    const name = unique("force");
    const child = holder("node", name, 3_000); // renews every 1 s, lease 2 s
    await child.waitFor("held");
    const breaker = new RedisLock(redis, name);
    assert.equal(await breaker.forceReleaseIfStale(0), false, "a renewing holder is never robbed");
    signal(child, "SIGSTOP");
    const stoppedAt = performance.now();
    let forcedAfter = -1;
    try {
      while (performance.now() - stoppedAt < 4_000) {
        if (await breaker.forceReleaseIfStale(0)) {
          forcedAfter = performance.now() - stoppedAt;
          break;
        }
        await sleep(25);
      }
    } finally {
      signal(child, "SIGCONT");
    }
    assert.ok(
      forcedAfter >= 900,
      `forced ${
        forcedAfter.toFixed(0)
      } ms after the pause; the lease is 2000 ms from the last renewal`,
    );
    assert.ok(
      forcedAfter < 3_000,
      `forced ${forcedAfter.toFixed(0)} ms after the pause (before the ttl)`,
    );
    await child.waitFor("gap", 10_000);
    assert.match(child.stdout(), /aborted=true reason=LockLostError/);
  });
});
