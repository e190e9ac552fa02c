// Redlock over three real, independent redis-servers: quorum grants,
// release on all, surviving a stopped master, failing clearly without a
// quorum, and fencing tokens that keep growing as quorums change.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { within } from "./_server_helpers.ts";
import { Redis } from "ioredis";
import { lock, LockBusyError, LockError, LockLostError, Redlock } from "../mod.ts";
import { ACQUIRE, RELEASE } from "../lib/redis/scripts.ts";
import { adaptRedisClient, type RedisAdapter } from "../lib/redis/client_adapter.ts";
import { RUN_ID_RETRY_MS } from "../lib/redis/redlock.ts";
import {
  describeRedis,
  type RedisServer,
  restartRedisServer,
  startRedisServer,
  startRestartableRedisServer,
} from "./_redis_server.ts";
import { wokenWithin } from "./_waiting.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;

describeRedis("Redlock over three redis-servers", () => {
  let servers: RedisServer[] = [];
  let clients: Redis[] = [];
  let raws: Redis[] = [];
  before(async () => {
    servers = await Promise.all([0, 1, 2].map(() => startRedisServer()));
    const make = (s: RedisServer) => {
      const c = new Redis({ port: s.port, host: "127.0.0.1", maxRetriesPerRequest: 1 });
      c.on("error", () => {}); // a stopped master's reconnect attempts
      return c;
    };
    clients = servers.map(make);
    raws = servers.map(make);
  });
  after(async () => {
    for (const c of [...clients, ...raws]) c.disconnect();
    await Promise.all(servers.map((s) => s.stop()));
  });

  const keysOn = (name: string) =>
    Promise.all(raws.map((r) => r.status === "ready" ? r.get(`socketlock:${name}`) : null));

  test("a lock is granted on all three masters, excludes a second contender, and is released on all", async () => {
    const redlock = new Redlock(clients, { ttl: 2_000 });
    assert.equal(redlock.quorum, 2);
    const name = unique("all");
    const held = await redlock.lock(name);
    const values = await keysOn(name);
    for (const value of values) assert.equal(JSON.parse(value!).owner, held.info.owner);
    for (const value of values) {
      assert.equal(JSON.parse(value!).token, held.token, "the quorum's token is recorded");
    }
    assert.equal(await redlock.tryLock(name), null);
    const busy = await redlock.lock(name, { timeout: 0 }).catch((e) => e);
    assert.ok(busy instanceof LockBusyError, String(busy));
    assert.equal(busy.holder?.owner, held.info.owner);
    await held.release();
    assert.deepEqual(await keysOn(name), [null, null, null]);
  });

  test("lock(name, { redis: [a, b, c] }) is Redlock, and a waiter wakes on release", async () => {
    const name = unique("api");
    const held = await lock(name, { redis: clients, ttl: 2_000 });
    assert.equal(held.info.masters, 3);
    const other = [0, 1, 2].map((i) => {
      const c = new Redis({ port: servers[i].port, host: "127.0.0.1" });
      c.on("error", () => {});
      raws.push(c);
      return c;
    });
    // Redlock waiters do not queue, nor renew anything: only a pub/sub
    // wake-up (the release's message; or, should subscribing take longer
    // than the sleep, the subscription going live) brings the lock, as the
    // backoff would try again after a minute and the wait is given up by an
    // abort, which (unlike a timeout) makes no last try at its end.
    const waiting = wokenWithin(10_000, (wake) => lock(name, { redis: other, ...wake }));
    await sleep(300);
    await held.release();
    const next = await waiting;
    assert.ok(next.token > held.token);
    await next.release();
  });

  test("one master counted twice is refused: the same client twice, or two clients of one server", async () => {
    const name = unique("twice");
    await assert.rejects(
      new Redlock([clients[0], clients[0], clients[1]]).tryLock(name),
      (e: unknown) => e instanceof LockError && /same Redis client more than once/.test(e.message),
    );
    await assert.rejects(
      new Redlock([clients[0], raws[0], clients[1]]).tryLock(name),
      (e: unknown) => e instanceof LockError && /two clients of one Redis server/.test(e.message),
    );
    assert.ok((await keysOn(name)).every((value) => value === null), "nothing was taken");
  });

  test("a duplicate master found when its INFO is asked again takes part in no grant", async () => {
    const name = unique("dup-recheck");
    const key = `socketlock:${name}`;
    await raws[1].set(key, '{"owner":"someone-else"}', "PX", 60_000); // master 2 refuses throughout
    await raws[0].set(key, '{"owner":"someone-else"}', "PX", 60_000); // held, for now
    const base = adaptRedisClient(raws[0]); // master 1: a second client of master 0's server
    let infos = 0;
    const flaky: RedisAdapter = {
      name: "flaky INFO",
      send: async (args) => {
        if (args[0] !== "INFO") return await base.send(args);
        if (infos++ === 0) throw new Error("read ECONNRESET"); // the first INFO fails
        await raws[0].del(key); // the holder lets go just as INFO is asked again,
        await sleep(300); // which answers within the per-master timeout
        return await base.send(args);
      },
      openSubscriber: () => base.openSubscriber!(),
      onClose: (listener) => base.onClose!(listener),
    };
    const outcome = await new Redlock([clients[0], flaky, clients[1]]).lock(name, {
      timeout: 5_000,
    })
      .then(async (held) => (await held.release(), "granted"), (error) => error);
    await raws[1].del(key);
    assert.ok(
      outcome instanceof LockError && /two clients of one Redis server/.test(outcome.message),
      `${outcome}: only one real master could grant it`,
    );
  });

  test("a master whose INFO never answers does not delay every try of a wait", async () => {
    const name = unique("hung-info");
    const acquireSha = Array.from(
      new Uint8Array(await crypto.subtle.digest("SHA-1", new TextEncoder().encode(ACQUIRE.source))),
      (byte) => byte.toString(16).padStart(2, "0"),
    ).join("");
    const tries: number[] = [];
    const inner = adaptRedisClient(raws[2]);
    const hung: RedisAdapter = {
      name: "hung INFO",
      send: (args) => {
        if (args[0] === "INFO") return new Promise(() => {});
        if (args[1] === acquireSha || args[1] === ACQUIRE.source) tries.push(Date.now());
        return inner.send(args);
      },
      openSubscriber: () => inner.openSubscriber!(),
      onClose: (listener) => inner.onClose!(listener),
    };
    const held = await new Redlock(clients, { ttl: 5_000 }).lock(name);
    // Per-master timeout 1000 ms (ttl/10, at most 1 s): only the first try
    // waits it out. A try that waited for INFO again would take the lock at
    // least 1000 ms after the release; a hand-off normally takes a few ms,
    // and the bound below leaves room for a loaded machine (300 ms against
    // a 500 ms timeout did not).
    const waiting = new Redlock([raws[0], raws[1], hung], { ttl: 10_000 })
      .lock(name, { timeout: 10_000 }).then((h) => ({ h, at: Date.now() }));
    for (let i = 0; i < 500 && tries.length < 3; i++) await sleep(10);
    await sleep(20);
    const releasedAt = Date.now();
    await held.release();
    const { h, at } = await waiting;
    await h.release();
    assert.ok(at - releasedAt < 900, `the woken waiter took the lock ${at - releasedAt} ms late`);
  });

  test("a master whose INFO failed is asked again: two clients of one server are still refused", async () => {
    const base = adaptRedisClient(raws[0]);
    let failures = 1;
    const flaky: RedisAdapter = {
      name: "flaky ioredis",
      send: (args) =>
        args[0] === "INFO" && failures-- > 0
          ? Promise.reject(new Error("read ECONNRESET"))
          : base.send(args),
      openSubscriber: () => base.openSubscriber!(),
      onClose: (listener) => base.onClose!(listener),
    };
    const redlock = new Redlock([clients[0], flaky, clients[1]]);
    const name = unique("flaky-info");
    // The failed INFO leaves that master unchecked for now...
    const first = await redlock.tryLock(name);
    await first?.release();
    // ...not for good: once asked again, it is found to be master 0's server.
    await sleep(RUN_ID_RETRY_MS + 200);
    await assert.rejects(
      redlock.tryLock(name),
      (e: unknown) => e instanceof LockError && /two clients of one Redis server/.test(e.message),
    );
    assert.equal(failures, -1, "INFO was asked once more, not at every try");
  });

  test("a master that answers a failed attempt's acquire only after its release keeps no key", async () => {
    const name = unique("orphan");
    const key = `socketlock:${name}`;
    // Master 0 is held by someone else; master 2 is slow past the per-master
    // timeout (500 ms for a 5 s ttl) and has lost its acquire script (a
    // restart), so the acquire is sent again in full after the release.
    await raws[0].set(key, '{"owner":"someone-else"}', "PX", 60_000);
    await raws[2].script("FLUSH");
    await raws[2].script("LOAD", RELEASE.source);
    await raws[2].call("CLIENT", "PAUSE", "1500", "ALL");
    assert.equal(await new Redlock(clients, { ttl: 5_000 }).tryLock(name), null);
    await sleep(1_800);
    assert.equal(await raws[2].get(key), null, "the late acquire was released again");
    assert.equal(await raws[1].get(key), null);
    await raws[0].del(key);
  });

  test("fencing tokens keep growing when quorums change", async () => {
    const redlock = new Redlock(clients, { ttl: 2_000 });
    const name = unique("tokens");
    const first = await redlock.lock(name);
    await first.release();
    // One master's counter runs far ahead of the clock (it served other quorums).
    await raws[0].incrby(`socketlock:${name}:token`, 10_000_000_000);
    const second = await redlock.lock(name);
    assert.ok(second.token > first.token + 10_000_000_000, `${first.token} then ${second.token}`);
    await second.release();
    // Master 0 is now out of reach for this lock: a quorum of 1 and 2 must
    // still count on from the token the previous quorum (0, 1, 2) reached.
    await raws[0].set(`socketlock:${name}`, "blocked by another tool", "PX", 10_000);
    const third = await redlock.lock(name);
    assert.ok(third.token > second.token, `${second.token} then ${third.token}`);
    await third.release();
    await raws[0].del(`socketlock:${name}`);
  });

  test("fencing tokens keep growing when every master restarts without its data", async () => {
    let own = await Promise.all([0, 1, 2].map(() => startRestartableRedisServer()));
    const masters = own.map((s) => {
      const c = new Redis({ port: s.port, host: "127.0.0.1" });
      c.on("error", () => {}); // reconnect attempts while it is down
      return c;
    });
    try {
      const redlock = new Redlock(masters, { ttl: 2_000 });
      const name = unique("restart");
      const first = await redlock.lock(name);
      await first.release();
      own = await Promise.all(own.map((s) => restartRedisServer(s)));
      const counters = await Promise.all(masters.map((m) => m.get(`socketlock:${name}:token`)));
      assert.deepEqual(counters, [null, null, null], "the counters were lost");
      const second = await redlock.lock(name, { timeout: 10_000 });
      await second.release();
      assert.ok(second.token > first.token, `${first.token} then ${second.token}`);
      assert.ok(Number.isSafeInteger(second.token));
    } finally {
      for (const m of masters) m.disconnect();
      await Promise.all(own.map((s) => s.stop()));
    }
  });

  test("with one master stopped mid-hold, the lock stays held past several ttls, is released, and new locks are granted", async () => {
    const redlock = new Redlock(clients, { ttl: 900 });
    const name = unique("survive");
    const held = await redlock.lock(name);
    await servers[2].stop();
    await sleep(3_000); // renewals every 300 ms, now from two masters
    assert.equal(held.signal.aborted, false, String(held.signal.reason));
    assert.equal(await redlock.tryLock(name), null, "still held by a quorum");
    await held.release();
    const [a, b] = await keysOn(name);
    assert.deepEqual([a, b], [null, null]);
    const next = await redlock.lock(name, { timeout: 5_000 });
    assert.ok(next.token > held.token);
    assert.equal(await redlock.tryLock(name), null);
    await next.release();
  });

  test("with two of three masters stopped, a held lock is lost loudly and new locks fail with a clear LockError", async () => {
    const redlock = new Redlock(clients, { ttl: 600 });
    const name = unique("minority");
    const held = await redlock.lock(name);
    const lost = new Promise<unknown>((resolve) =>
      held.signal.addEventListener("abort", () => resolve(held.signal.reason), { once: true })
    );
    // Stopped by the test before, if it ran; stop() of a stopped one is a no-op.
    await servers[2].stop();
    await servers[1].stop();
    const reason = await within(lost, 10_000, "held.signal's abort");
    assert.ok(reason instanceof LockLostError, String(reason));
    await held.release();
    const error = await redlock.lock(unique("none"), { timeout: 2_000 }).catch((e) => e);
    assert.ok(error instanceof LockError, String(error));
    assert.match(error.message, /quorum \(2 of 3\)/);
  });
});
