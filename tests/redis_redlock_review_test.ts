// Redlock, from review 3 (.scratch/review3_redlock): a waiter that keeps
// getting a minority grant backs off instead of waking itself with its own
// undo; a held lock's release() also undoes an acquire that answered late;
// a token is raised on every master that answered, so tokens still grow
// after the quorum's masters lose their counters; and a lock() wait
// outlasts the client's command timeouts, as the single-master kind's does.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Redis, type RedisOptions } from "ioredis";
import { LockError, LockTimeoutError, Redlock } from "../mod.ts";
import { adaptRedisClient, type RedisAdapter } from "../lib/redis/client_adapter.ts";
import {
  ACQUIRE,
  EXTEND,
  RAISE_COUNTER,
  RAISE_TOKEN,
  RELEASE,
  UNDO_ACQUIRE,
} from "../lib/redis/scripts.ts";
import { describeRedis, type RedisServer, startRedisServer } from "./_redis_server.ts";
import { eventually, wokenWithin } from "./_waiting.ts";
import { sleep } from "./_server_helpers.ts";

const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;

async function sha1(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** An adapter over `inner` that sees every command before it is sent. */
function watched(inner: RedisAdapter, onSend: (args: readonly string[]) => void): RedisAdapter {
  return {
    name: inner.name,
    send: (args) => {
      onSend(args);
      return inner.send(args);
    },
    openSubscriber: inner.openSubscriber?.bind(inner),
    onClose: inner.onClose?.bind(inner),
  };
}

describeRedis("Redlock, review 3: backoff, late acquires, tokens, command timeouts", () => {
  let servers: RedisServer[] = [];
  const clients: Redis[] = [];
  let masters: Redis[] = [];
  let raws: Redis[] = [];
  const client = (port: number, extra: RedisOptions = {}) => {
    const c = new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: 1, ...extra });
    c.on("error", () => {});
    clients.push(c);
    return c;
  };
  before(async () => {
    servers = await Promise.all([0, 1, 2].map(() => startRedisServer()));
    masters = servers.map((s) => client(s.port));
    raws = servers.map((s) => client(s.port));
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    await Promise.all(servers.map((s) => s.stop()));
  });

  const keysOn = (name: string) => Promise.all(raws.map((r) => r.get(`socketlock:${name}`)));

  test("a waiter whose tries get a minority grant backs off instead of waking itself with its undo", async () => {
    const name = unique("spin");
    const held = await new Redlock(masters, { ttl: 5_000 }).lock(name);
    // Master 2 lost the key (restarted without its data): the holder keeps
    // its quorum on 0 and 1, and every try of the waiter is granted there.
    await raws[2].del(`socketlock:${name}`);
    const acquireSha = await sha1(ACQUIRE.source);
    let tries = 0;
    const adapters = servers.map((s, i) =>
      watched(adaptRedisClient(client(s.port)), (args) => {
        if (i === 2 && (args[1] === acquireSha || args[1] === ACQUIRE.source)) tries++;
      })
    );
    try {
      const started = performance.now();
      const error = await new Redlock(adapters, { ttl: 5_000 }).lock(name, { timeout: 1_500 })
        .catch((e) => e);
      const ms = Math.round(performance.now() - started);
      assert.ok(error instanceof LockTimeoutError, String(error));
      assert.equal(held.signal.aborted, false, "the holder kept its quorum");
      // The default backoff (1 ms doubling to 100 ms, ±50 %) makes about 20
      // tries in 1.5 s; waking on its own undo made 1,400 to 2,100.
      assert.ok(tries < 100, `the waiter tried ${tries} times in ${ms} ms: it spins`);
      // The try the timeout gave up on is undone once it settles.
      assert.ok(
        await eventually(async () => await raws[2].get(`socketlock:${name}`) === null, 2_000),
        "every try was undone",
      );
    } finally {
      await held.release();
    }
  });

  test("such a waiter still wakes at once on the holder's release", async () => {
    const name = unique("wake");
    const held = await new Redlock(masters, { ttl: 5_000 }).lock(name);
    await raws[2].del(`socketlock:${name}`);
    const others = servers.map((s) => client(s.port));
    // No polling: only the release's message (or the subscription going
    // live, once) brings the lock within the time.
    const waiting = wokenWithin(
      5_000,
      (wake) =>
        new Redlock(others, { ttl: 5_000, retry: wake.retry }).lock(name, { signal: wake.signal }),
    );
    await sleep(500);
    await held.release();
    const next = await waiting;
    assert.ok(next.token > held.token);
    await next.release();
    assert.deepEqual(await keysOn(name), [null, null, null]);
  });

  test("a held lock's release leaves no key on a master whose acquire answered late", async () => {
    const name = unique("late");
    const key = `socketlock:${name}`;
    // Master 2 restarted (no scripts cached) and a release has loaded
    // RELEASE there since; it is slow past the per-master timeout (500 ms
    // for a 5 s ttl), so the acquire is sent again in full after NOSCRIPT,
    // after the lock's release.
    await raws[2].script("FLUSH");
    await raws[2].script("LOAD", RELEASE.source);
    await raws[2].call("CLIENT", "PAUSE", "1500", "ALL");
    const held = await new Redlock(masters, { ttl: 5_000 }).tryLock(name);
    assert.ok(held, "a quorum (masters 0 and 1) granted it");
    await held.release();
    assert.equal(await raws[0].get(key), null);
    assert.equal(await raws[1].get(key), null);
    await sleep(1_800);
    const left = await raws[2].get(key);
    await raws[2].del(key);
    assert.equal(left, null, "the late acquire left the released lock's key on master 2");
  });

  test("a token is raised on masters that answered but refused: it survives the quorum's counters", async () => {
    const redlock = new Redlock(masters, { ttl: 2_000 });
    const name = unique("raise");
    const key = `socketlock:${name}`;
    const counter = `${key}:token`;
    // Master 0's counter runs far ahead of every clock (as a fast clock
    // would put it); master 2 refuses (another tool holds the key there).
    await raws[0].set(counter, String(Date.now() * 1_000 + 10_000_000_000));
    await raws[2].set(key, "held by another tool", "PX", 10_000);
    const first = await redlock.lock(name);
    await first.release();
    assert.ok(
      await eventually(async () => Number(await raws[2].get(counter)) >= first.token, 1_000),
      `master 2's counter was raised to ${first.token} (it is ${await raws[2].get(counter)})`,
    );
    // Master 1 loses its counter (a restart with persistence off); master 0
    // is out of reach for this lock, master 2 free again: the next quorum
    // is {1, 2}, whose clocks are far behind the first token.
    await raws[1].del(counter);
    await raws[0].set(key, "held by another tool", "PX", 10_000);
    await raws[2].del(key);
    const second = await redlock.lock(name, { timeout: 5_000 });
    await second.release();
    await raws[0].del(key);
    assert.ok(second.token > first.token, `tokens went back: ${first.token} then ${second.token}`);
  });

  test("a refusing master's counter is never lowered by the raise", async () => {
    const redlock = new Redlock(masters, { ttl: 2_000 });
    const name = unique("never-lower");
    const key = `socketlock:${name}`;
    const counter = `${key}:token`;
    const high = String(Date.now() * 1_000 + 50_000_000_000);
    await raws[2].set(counter, high);
    await raws[2].set(key, "held by another tool", "PX", 10_000);
    const held = await redlock.lock(name);
    await held.release();
    await sleep(100);
    assert.equal(await raws[2].get(counter), high);
    await raws[2].del(key);
  });

  // Loaded first: a script Redis must load would be paused as a NOSCRIPT and an EVAL.
  const loadScripts = async () => {
    for (const raw of raws) {
      for (const script of [ACQUIRE, UNDO_ACQUIRE, RELEASE, RAISE_TOKEN, RAISE_COUNTER, EXTEND]) {
        await raw.script("LOAD", script.source);
      }
    }
  };
  // Masters 1 and 2 run no script (nor any other write) for `ms`: commands
  // sent meanwhile time out in the client, and run once the pause ends.
  const pauseWrites = (ms: number) =>
    Promise.all([1, 2].map((i) => raws[i].call("CLIENT", "PAUSE", String(ms), "WRITE")));
  const timingOut = async () => {
    const timing = servers.map((s) => client(s.port, { commandTimeout: 100 }));
    await Promise.all(timing.map((c) => c.ping()));
    return timing;
  };

  test("a lock() wait outlasts command timeouts on a majority of masters; what they took is undone", async () => {
    await loadScripts();
    const redlock = new Redlock(await timingOut(), { ttl: 5_000 });
    const name = unique("timeouts");
    // Once, before the pause: the masters are told apart by INFO.
    await (await redlock.lock(unique("warm-up"))).release();
    await pauseWrites(600);
    const held = await redlock.lock(name, { timeout: 5_000 });
    assert.ok(held.token > 0);
    await held.release();
    await sleep(200);
    assert.deepEqual(await keysOn(name), [null, null, null], "the late acquires were undone");
  });

  test("a wait that gives up during command timeouts leaves no key; tryLock still fails", async () => {
    await loadScripts();
    const redlock = new Redlock(await timingOut(), { ttl: 5_000 });
    const name = unique("timeouts-give-up");
    await (await redlock.lock(unique("warm-up"))).release();
    await pauseWrites(1_200);
    const error = await redlock.lock(name, { timeout: 400 }).catch((e) => e);
    assert.ok(error instanceof LockTimeoutError, String(error));
    // The try the timeout gave up on settles (its undo times out too).
    await sleep(300);
    const single = await redlock.tryLock(name).catch((e) => e);
    assert.ok(single instanceof LockError && /quorum/.test(single.message), String(single));
    await sleep(1_000);
    assert.deepEqual(await keysOn(name), [null, null, null], "the late acquires were undone");
  });
});
