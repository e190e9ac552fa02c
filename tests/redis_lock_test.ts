// The Redis kind within one process, against a real redis-server: the
// stored value, exclusion, owner-only release, heartbeat, loss, staleness,
// fencing, pub/sub wake-up, and clear errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { within } from "./_server_helpers.ts";
import { Redis } from "ioredis";
import {
  lock,
  LockBusyError,
  LockError,
  LockLostError,
  LockProtocolError,
  RedisLock,
  tryLock,
} from "../mod.ts";
import type { RedisAdapter } from "../mod.ts";
import {
  describeRedis,
  restartRedisServer,
  startRedisServer,
  startRestartableRedisServer,
} from "./_redis_server.ts";
import { redisSuite } from "./_redis_suite.ts";
import { eventually, NO_POLLING } from "./_waiting.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;
// Tokens are the server's clock in µs (or one more than the last): since 2020, below 2^53.
const MICROS_2020 = 1_577_836_800_000_000;

describeRedis("Redis kind", () => {
  const suite = redisSuite();
  const client = () => suite.client();

  test("lock() with { redis } stores JSON with owner, pid, host, token and a TTL, and release deletes it", async () => {
    const name = unique("value");
    const held = await lock(name, { redis: client(), ttl: 5_000 });
    assert.equal(held.kind, "redis");
    const stored = JSON.parse((await suite.raw.get(`socketlock:${name}`))!);
    assert.equal(stored.owner, held.info.owner);
    assert.equal(stored.pid, held.info.pid);
    assert.ok(
      /^\{"owner":"/.test((await suite.raw.get(`socketlock:${name}`))!),
      "the owner comes first",
    );
    assert.equal(stored.host, held.info.host);
    assert.equal(stored.token, held.token);
    assert.equal(stored.ttl, 5_000);
    assert.ok(
      Math.abs(stored.acquiredAt - Date.now()) < 5_000,
      "acquiredAt is the server's epoch ms",
    );
    const pttl = await suite.raw.pttl(`socketlock:${name}`);
    assert.ok(pttl > 0 && pttl <= 5_000, `pttl ${pttl}`);
    await held.release();
    assert.equal(await suite.raw.exists(`socketlock:${name}`), 0);
    assert.equal(held.signal.aborted, false, "a released lock was not lost");
  });

  test("two clients exclude each other: tryLock() returns null and timeout 0 names the holder's pid", async () => {
    const name = unique("exclude");
    const a = client();
    const b = client();
    const held = await lock(name, { redis: a });
    try {
      assert.equal(await tryLock(name, { redis: b }), null);
      const error = await lock(name, { redis: b, timeout: 0 }).catch((e) => e);
      assert.ok(error instanceof LockBusyError, String(error));
      assert.equal(error.holder?.pid, held.info.pid);
      assert.equal(error.holder?.owner, held.info.owner);
    } finally {
      await held.release();
    }
    const again = await tryLock(name, { redis: b });
    assert.ok(again);
    await again.release();
  });

  test("fencing tokens strictly increase across clients, lock() and RedisLock, and are exact integers from the server's clock", async () => {
    const name = unique("tokens");
    const clientsUsed = [client(), client()];
    const tokens: number[] = [];
    for (let i = 0; i < 12; i++) {
      const c = clientsUsed[i % 2];
      if (i % 3 === 0) {
        const l = new RedisLock(c, name);
        await l.acquire({ timeout: 5_000 });
        tokens.push(l.token!);
        await l.release();
      } else {
        const held = await lock(name, { redis: c, timeout: 5_000 });
        tokens.push(held.token);
        await held.release();
      }
    }
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1], `${tokens}`);
    for (const token of tokens) {
      assert.ok(Number.isSafeInteger(token) && token > MICROS_2020, `token ${token}`);
    }
    assert.equal(await suite.raw.get(`socketlock:${name}:token`), String(tokens.at(-1)));
    // A counter run ahead of the clock (another tool, or a clock that
    // stepped back) still counts on by one.
    const ahead = tokens.at(-1)! + 10_000_000_000;
    await suite.raw.set(`socketlock:${name}:token`, String(ahead));
    const held = await lock(name, { redis: clientsUsed[0] });
    assert.equal(held.token, ahead + 1);
    await held.release();
  });

  test("fencing tokens keep growing across a restart of redis-server with persistence off", async () => {
    let own = await startRestartableRedisServer();
    const c = new Redis({ port: own.port, host: "127.0.0.1" });
    c.on("error", () => {}); // reconnect attempts while it is down
    const name = unique("restart");
    try {
      const before: number[] = [];
      for (let i = 0; i < 3; i++) {
        const held = await lock(name, { redis: c, timeout: 5_000 });
        before.push(held.token);
        await held.release();
      }
      own = await restartRedisServer(own);
      assert.equal(await c.get(`socketlock:${name}:token`), null, "the counter was lost");
      const held = await lock(name, { redis: c, timeout: 10_000 });
      await held.release();
      assert.ok(held.token > before.at(-1)!, `${before} then ${held.token} after the restart`);
      assert.ok(Number.isSafeInteger(held.token));
    } finally {
      c.disconnect();
      await own.stop();
    }
  });

  test("release is by owner: a holder whose key expired and was retaken leaves the new holder's lock alone, and its signal aborts", async () => {
    const name = unique("owner");
    const key = `socketlock:${name}`;
    const first = new RedisLock(client(), name, { ttl: 600 });
    await first.acquire();
    const lostSignal = first.signal!;
    await suite.raw.pexpire(key, 1); // as if the holder had stalled past its ttl
    await sleep(10);
    const second = new RedisLock(client(), name, { ttl: 5_000 });
    assert.equal(await second.tryAcquire(), true);
    assert.equal(await first.isMine(), false);
    // The first holder's heartbeat (every 200 ms) finds the key not its own.
    const deadline = performance.now() + 3_000;
    while (!lostSignal.aborted && performance.now() < deadline) await sleep(20);
    assert.ok(lostSignal.reason instanceof LockLostError, String(lostSignal.reason));
    assert.match(lostSignal.reason.message, /no longer held by this owner/);
    await first.release();
    assert.equal(await second.isMine(), true, "the first holder's release did not delete it");
    await second.release();
  });

  test("isMine() is false once the holder's lease ran out, even while the key is still in Redis", async () => {
    const lock = new RedisLock(client(), unique("lapsed"), { ttl: 300 });
    assert.equal(await lock.tryAcquire(), true);
    // The event loop blocked past the lease but short of the ttl: no renewal ran.
    const until = performance.now() + 260;
    while (performance.now() < until) { /* busy */ }
    assert.equal(await lock.isMine(), false);
    await lock.release();
  });

  test("the heartbeat keeps a lock held past four ttls", async () => {
    const name = unique("heartbeat");
    // Renewals every 333 ms; the key would expire 1 s after the last one.
    const held = await lock(name, { redis: client(), ttl: 1_000 });
    const other = client();
    try {
      for (let i = 0; i < 10; i++) {
        await sleep(400);
        assert.equal(
          await tryLock(name, { redis: other }),
          null,
          `still held after ${(i + 1) * 400} ms (holder's signal aborted: ${held.signal.aborted})`,
        );
      }
      assert.equal(held.signal.aborted, false);
      const info = await new RedisLock(other, name).info();
      assert.equal(info?.owner, held.info.owner);
      const renewedAt = info?.renewedAt as number;
      assert.ok(
        renewedAt > info!.acquiredAt + 1_000,
        `renewed at ${renewedAt}, acquired at ${info!.acquiredAt}`,
      );
    } finally {
      await held.release();
    }
  });

  test("RedisLock has AppLocker's surface: tryAcquire, isMine, info, duration, release", async () => {
    const name = unique("applocker");
    const c = client();
    const l = new RedisLock(c, name, { key: `LOCK:${name}`, ttl: 10_000 });
    assert.equal(l.duration(), null);
    assert.equal(await l.isMine(), false);
    assert.equal(await l.info(), null);
    assert.equal(await l.tryAcquire(), true);
    await assert.rejects(
      l.tryAcquire(),
      (e) => e instanceof LockError && /already held/.test(e.message),
    );
    await sleep(30);
    assert.ok(l.duration()! >= 25, String(l.duration()));
    assert.equal(await l.isMine(), true);
    const info = await l.info();
    assert.equal(info?.pid, l.held!.info.pid);
    assert.equal(info?.owner, l.held!.info.owner);
    assert.equal(info?.token, l.token);
    assert.ok((info?.expiresIn as number) > 0);
    assert.ok(await suite.raw.exists(`LOCK:${name}`));
    const other = new RedisLock(client(), name, { key: `LOCK:${name}` });
    assert.equal(await other.tryAcquire(), false);
    assert.equal(await other.isMine(), false);
    await l.release();
    await l.release();
    assert.equal(await other.tryAcquire(), true);
    await other[Symbol.asyncDispose]();
    assert.equal(await suite.raw.exists(`LOCK:${name}`), 0);
  });

  test("forceReleaseIfStale() never deletes a lock whose holder is still renewing", async () => {
    const name = unique("renewing");
    // Renewals every second, lease 2 s: only a holder late by more than a
    // second (a starved machine) has lost its lease (and knows it).
    const holder = new RedisLock(client(), name, { ttl: 3_000 });
    await holder.acquire();
    const start = performance.now(); // after the first lease began
    const signal = holder.signal!;
    const breaker = new RedisLock(client(), name);
    try {
      // Past the first lease's end (2 s): only renewals keep it from being stale.
      for (let i = 0; i < 200 && performance.now() - start < 2_600; i++) {
        const forced = await breaker.forceReleaseIfStale(0);
        // Safety, whatever the load: a lock is only ever broken after its
        // holder's own clock has ended the lease.
        if (forced) {
          assert.equal(signal.aborted, true, "broken while the holder still relied on it");
        }
        assert.equal(forced, false, `attempt ${i}: the renewing holder was judged stale`);
        await sleep(40);
      }
      assert.equal(await holder.isMine(), true);
      assert.equal(signal.aborted, false);
    } finally {
      await holder.release();
    }
  });

  test("forceReleaseIfStale() deletes a lock not renewed for longer than staleMs and its lease, by the server's clock", async () => {
    const name = unique("stale");
    const key = `socketlock:${name}`;
    // A holder that took the lock with ttl 60 s and stopped renewing `idle`
    // ms ago: every renewal resets the expiry to the ttl, so it has ttl - idle left.
    const dead = (idle: number) =>
      suite.raw.set(
        key,
        JSON.stringify({
          owner: "crashed",
          pid: 1,
          host: "gone",
          ttl: 60_000,
          lease: 40_000,
          acquiredAt: Date.now() - idle,
          token: 1,
        }),
        "PX",
        60_000 - idle,
      );
    const l = new RedisLock(client(), name);
    await dead(35_000);
    assert.equal(await l.forceReleaseIfStale(30_000), false, "idle 35 s is within its 40 s lease");
    const info = await l.info();
    assert.ok(
      Math.abs(Date.now() - 35_000 - (info?.renewedAt as number)) < 2_000,
      "renewedAt = now - (ttl - pttl)",
    );
    await dead(50_000);
    assert.equal(await l.forceReleaseIfStale(55_000), false, "idle 50 s is under staleMs");
    assert.equal(await l.forceReleaseIfStale(30_000), true);
    assert.equal(await suite.raw.exists(key), 0);
    assert.equal(await l.forceReleaseIfStale(30_000), false, "nothing left to release");
    await dead(50_000);
    await suite.raw.persist(key); // an operator removed the expiry: not ours to judge
    assert.equal(await l.forceReleaseIfStale(0), false);
    await suite.raw.del(key);
  });

  test("a value another tool wrote on the key (AppLocker's uuid) is respected, never released or judged stale", async () => {
    const name = unique("foreign");
    const key = `LOCK:${name}`;
    await suite.raw.set(key, "9f1c2d3e4b5a69788796a5b4c3d2e1f0", "PX", 60_000);
    const l = new RedisLock(client(), name, { key });
    assert.equal(await l.tryAcquire(), false);
    const error = await l.acquire({ timeout: 0 }).catch((e) => e);
    assert.ok(error instanceof LockBusyError);
    assert.equal(error.holder?.foreign, true);
    assert.equal(await l.forceReleaseIfStale(0), false);
    assert.equal(await suite.raw.get(key), "9f1c2d3e4b5a69788796a5b4c3d2e1f0");
    await suite.raw.del(key);
  });

  test("a release hands the lock to a queued waiter at once, never at its backoff's next try", async () => {
    const name = unique("wake");
    const held = await lock(name, { redis: client() });
    // The waiting loop's backoff would try again only after a minute (or at
    // the 20 s deadline). A queued Redis waiter wakes itself, though: by the
    // release's pub/sub grant, or to renew its place (every 100 ms), which
    // would find the lock handed to it as well. So the hand-off is shown to
    // come from the kind's own wake-up, loosely timed for a loaded machine;
    // which of the two it was, timing cannot tell.
    const retry = NO_POLLING;
    let releasedAt = 0;
    const waiting = lock(name, { redis: client(), retry, timeout: 20_000 }).then((h) => {
      return { held: h, at: performance.now() };
    });
    await sleep(400); // the waiter has subscribed and gone back to sleep
    releasedAt = performance.now();
    await held.release();
    const { held: next, at } = await waiting;
    const handoff = at - releasedAt;
    await next.release();
    assert.ok(handoff < 5_000, `hand-off took ${handoff.toFixed(1)} ms`);
  });

  test("with ioredis' keyPrefix, waiters listen on the prefixed channels the releases publish on", async () => {
    const name = unique("prefixed");
    const prefixed = () => suite.client({ keyPrefix: "app:" });
    const held = await lock(name, { redis: prefixed() });
    assert.ok(await suite.raw.exists(`app:socketlock:${name}`), "the key carries the prefix");
    const waiting = lock(name, { redis: prefixed(), timeout: 20_000 });
    // Polled, not a fixed sleep: on a loaded machine the waiter's first try
    // and SUBSCRIBE can take longer than any sleep chosen here.
    assert.ok(
      await eventually(async () => {
        const channels = await suite.raw.pubsub("CHANNELS", `app:socketlock:${name}:released*`);
        return (channels as string[]).length > 0;
      }, 10_000),
      "the waiter listens on a prefixed channel",
    );
    await held.release();
    await (await waiting).release();
  });

  test("a client without pub/sub still gets the lock by polling", async () => {
    const name = unique("poll");
    const c = client();
    const polling: RedisAdapter = {
      name: "poll-only",
      send: (args) => c.call(args[0], ...args.slice(1)),
    };
    const held = await lock(name, { redis: client() });
    setTimeout(() => held.release(), 100);
    const next = await lock(name, { redis: polling, timeout: 5_000 });
    assert.ok(next.token > held.token);
    await next.release();
  });

  test("bad options and bad keys give clear LockErrors", async () => {
    assert.throws(() => new RedisLock(client(), "x", { key: "" }), /Redis key is empty/);
    assert.throws(
      () => new RedisLock(client(), "x", { key: 42 as unknown as string }),
      /must be a string/,
    );
    assert.throws(() => new RedisLock(client(), "x", { key: "k".repeat(2_000) }), /at most 1024/);
    assert.throws(() => new RedisLock(client(), "x", { ttl: 5 }), /ttl option must be a number/);
    assert.throws(
      () => new RedisLock({}, "x"),
      (e) => e instanceof LockError && /ioredis.*node-redis.*Bun/s.test(e.message),
    );
    assert.throws(() => new RedisLock(client(), "a/b"), /Invalid lock name/);
    await assert.rejects(lock("x", { kind: "redis" }), /no client was given/);
    await assert.rejects(lock("x", { redis: "redis://localhost" }), /must be a Redis client/);
  });

  test("a key holding another type, or a counter that is not a number, gives a LockProtocolError saying what to do", async () => {
    const name = unique("wrongtype");
    await suite.raw.lpush(`socketlock:${name}`, "x");
    const error = await lock(name, { redis: client(), timeout: 0 }).catch((e) => e);
    assert.ok(error instanceof LockProtocolError, String(error));
    assert.match(error.message, /WRONGTYPE/);
    assert.match(error.message, /choose another key/);
    const other = unique("counter");
    await suite.raw.set(`socketlock:${other}:token`, "not-a-number");
    const counterError = await lock(other, { redis: client(), timeout: 0 }).catch((e) => e);
    assert.ok(counterError instanceof LockProtocolError, String(counterError));
    assert.match(counterError.message, /fencing counter/);
    assert.equal(await suite.raw.exists(`socketlock:${other}`), 0, "nothing was left behind");
  });

  test("a Redis that refuses the scripts (ACL without +@scripting, out of memory) gives a LockProtocolError naming the fix", async () => {
    await suite.raw.call(
      "ACL",
      "SETUSER",
      "noscripts",
      "on",
      ">pw",
      "~*",
      "&*",
      "+@all",
      "-@scripting",
    );
    const limited = suite.client({ username: "noscripts", password: "pw" });
    const denied = await lock(unique("acl"), { redis: limited, timeout: 0 }).catch((e) => e);
    assert.ok(denied instanceof LockProtocolError, String(denied));
    assert.match(denied.message, /NOPERM/);
    assert.match(denied.message, /\+@scripting/);

    await suite.raw.config("SET", "maxmemory", "1");
    try {
      const oom = await lock(unique("oom"), { redis: client(), timeout: 0 }).catch((e) => e);
      assert.ok(oom instanceof LockProtocolError, String(oom));
      assert.match(oom.message, /OOM/);
      assert.match(oom.message, /maxmemory/);
    } finally {
      await suite.raw.config("SET", "maxmemory", "0");
    }
  });

  test("killing redis-server while a lock is held aborts held.signal with LockLostError within its lease", async () => {
    const own = await startRedisServer();
    const c = new Redis({ port: own.port, host: "127.0.0.1" });
    c.on("error", () => {}); // reconnect attempts after the kill
    try {
      const held = await lock(unique("killed"), { redis: c, ttl: 600 });
      const lost = new Promise<unknown>((resolve) =>
        held.signal.addEventListener("abort", () => resolve(held.signal.reason), { once: true })
      );
      const killedAt = performance.now();
      own.child.process.kill("SIGKILL");
      const reason = await within(lost, 10_000, "held.signal's abort");
      const took = performance.now() - killedAt;
      assert.ok(reason instanceof LockLostError, String(reason));
      assert.ok(took < 1_500, `took ${took.toFixed(0)} ms; the lease is 400 ms`);
      const started = performance.now();
      await held.release(); // no waiting on a dead server (ioredis would retry for seconds)
      assert.ok(performance.now() - started < 1_000);
    } finally {
      c.disconnect();
      await own.stop();
    }
  });
});
