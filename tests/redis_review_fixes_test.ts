// Fixes from the Redis review: Redlock's inspect() settles with a master
// black-holed; a Redlock release no master confirmed rejects and can be
// retried; a hand-written adapter's plain values and synchronous NOSCRIPT
// throws go through the EVAL fallback and the LockError mapping.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import type * as net from "node:net";
import { Redis } from "ioredis";
import {
  inspect,
  lock,
  LockAbortedError,
  LockBusyError,
  LockError,
  Redlock,
  tryLock,
} from "../mod.ts";
import { adaptRedisClient, type RedisAdapter } from "../lib/redis/client_adapter.ts";
import { holderInfo } from "../lib/redis/key_layout.ts";
import { describeRedis, type RedisServer, startRedisServer } from "./_redis_server.ts";
import { type RelayProxy, relayProxy } from "./_relay_proxy.ts";
import { sleep, within } from "./_server_helpers.ts";

const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;

/**
 * A relay that can black-hole its link (bytes dropped both ways, no FIN, no
 * RST: a partition) and heal it: the stuck connections are then reset, as
 * a partition's end usually does, and the client reconnects.
 */
async function partitionable(port: number) {
  const state = { blackHoled: false };
  const live = new Set<net.Socket>();
  const proxy: RelayProxy = await relayProxy(port, (client, upstream) => {
    live.add(client);
    client.on("close", () => live.delete(client));
    client.on("data", (chunk) => state.blackHoled || upstream.write(chunk));
    upstream.on("data", (chunk) => state.blackHoled || client.write(chunk));
  });
  return {
    port: proxy.port,
    blackHole() {
      state.blackHoled = true;
    },
    heal() {
      state.blackHoled = false;
      for (const socket of live) socket.destroy();
    },
    close: () => proxy.close(),
  };
}
type Partitionable = Awaited<ReturnType<typeof partitionable>>;

/** Waits (at most 5 s) until every client is connected again. */
async function allReady(clients: Redis[]): Promise<void> {
  for (let i = 0; i < 250 && !clients.every((c) => c.status === "ready"); i++) await sleep(20);
  assert.deepEqual(clients.map((c) => c.status), clients.map(() => "ready"));
}

describeRedis("Redlock with unreachable masters: inspect and release", () => {
  let servers: RedisServer[] = [];
  let proxies: Partitionable[] = [];
  const clients: Redis[] = [];
  // Pending commands fail when a healed link resets, and are not resent:
  // only what the test sends after healing reaches the masters.
  const client = (port: number) => {
    const c = new Redis({
      port,
      host: "127.0.0.1",
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
    });
    c.on("error", () => {}); // the reset of a healed link
    clients.push(c);
    return c;
  };
  let direct: Redis[] = [];
  let proxied: Redis[] = [];
  before(async () => {
    servers = await Promise.all([0, 1, 2].map(() => startRedisServer()));
    proxies = await Promise.all(servers.map((s) => partitionable(s.port)));
    direct = servers.map((s) => client(s.port));
    proxied = proxies.map((p) => client(p.port));
    await Promise.all(clients.map((c) => c.ping()));
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    await Promise.all(proxies.map((p) => p.close()));
    await Promise.all(servers.map((s) => s.stop()));
  });
  const keysOn = (name: string) => Promise.all(direct.map((r) => r.exists(`socketlock:${name}`)));

  test("inspect() with one of three masters black-holed settles within the per-master timeout and names the holder", async () => {
    const name = unique("inspect");
    const held = await lock(name, { redis: direct, ttl: 5_000 });
    proxies[2].blackHole();
    try {
      const started = performance.now();
      // The default ttl (30 s) gives a 1 s per-master timeout.
      const found = await within(
        inspect(name, { redis: [direct[0], direct[1], proxied[2]] }),
        5_000,
        "inspect() with a master black-holed",
      );
      const took = performance.now() - started;
      assert.equal(found?.owner, held.info.owner);
      assert.ok(took >= 900, `waited for the black-holed master's timeout only: ${took} ms`);
    } finally {
      proxies[2].heal();
      await held.release();
    }
    await allReady(proxied);
    assert.equal(await inspect(name, { redis: proxied }), null);
  });

  test("release() with every master black-holed rejects with a LockError, keeps the lock, and a retry once they are back removes it", async () => {
    const name = unique("release");
    const held = await new Redlock(proxied, { ttl: 10_000 }).lock(name);
    for (const p of proxies) p.blackHole();
    try {
      const first = await within(held.release().then(() => null, (e) => e), 5_000, "release()");
      assert.ok(first instanceof LockError, String(first));
      assert.match(first.message, /could not release lock .*only 0 of 3 .*release\(\) again/);
      // Not remembered as done: a second call tries again (and fails again).
      const second = await within(held.release().then(() => null, (e) => e), 5_000, "release()");
      assert.ok(second instanceof LockError, String(second));
    } finally {
      for (const p of proxies) p.heal();
    }
    await allReady(proxied);
    assert.deepEqual(await keysOn(name), [1, 1, 1], "the failed releases removed nothing");
    // Contenders use the direct links: a failed try subscribes for wake-ups,
    // and those subscribers had better not sit on links the tests reset.
    const contender = new Redlock(direct, { ttl: 10_000 });
    assert.equal(await contender.tryLock(name), null, "the lock is still held");
    await held.release();
    assert.deepEqual(await keysOn(name), [0, 0, 0]);
    await held.release(); // done: idempotent from now on
    const next = await contender.tryLock(name);
    assert.ok(next && next.token > held.token);
    await next.release();
  });

  test("a lock whose release failed renews no more: it expires with its ttl, and a retry then resolves", async () => {
    const name = unique("expire");
    const held = await new Redlock(proxied, { ttl: 300 }).lock(name);
    for (const p of proxies) p.blackHole();
    try {
      await assert.rejects(within(held.release(), 5_000, "release()"), LockError);
    } finally {
      for (const p of proxies) p.heal();
    }
    await allReady(proxied);
    // Renewals would come every 100 ms; none comes, so the keys expire.
    for (let i = 0; i < 100 && (await keysOn(name)).some((n) => n === 1); i++) await sleep(20);
    assert.deepEqual(await keysOn(name), [0, 0, 0]);
    await held.release(); // every master answers "not ours": nothing left to release
  });

  test("release() with one of three masters black-holed resolves: a quorum released it", async () => {
    const name = unique("minority");
    const redlock = new Redlock(proxied, { ttl: 2_000 });
    const held = await redlock.lock(name);
    proxies[2].blackHole();
    try {
      await within(held.release(), 5_000, "release()");
      assert.deepEqual((await keysOn(name)).slice(0, 2), [0, 0]);
    } finally {
      proxies[2].heal();
    }
    await allReady(proxied);
    // Master 2's key is left to its ttl; a quorum (0 and 1) is free now.
    const next = await redlock.tryLock(name);
    assert.ok(next && next.token > held.token);
    await next.release();
  });
});

describe("a hand-written adapter: plain values and synchronous throws", () => {
  type Mode = "reject" | "throw";
  // A stand-in with no server: EVALSHA fails with NOSCRIPT (by rejecting or
  // by throwing), EVAL answers with a plain value: "acquired" (or
  // "released"), or `evalError` thrown or rejected the same way.
  const standIn = (mode: Mode, evalError?: string) => {
    const sent: string[] = [];
    const fail = (message: string) => {
      if (mode === "throw") throw new Error(message);
      return Promise.reject(new Error(message));
    };
    return {
      sent,
      adapter: {
        name: `stand-in (${mode})`,
        send(args: readonly string[]): unknown {
          sent.push(args[0]);
          if (args[0] === "EVALSHA") return fail("NOSCRIPT No matching script. Please use EVAL.");
          if (evalError) return fail(evalError);
          return [1, 1_795_730_000_000_000, 1_795_730_000_000];
        },
      },
    };
  };

  for (const mode of ["reject", "throw"] as const) {
    test(`NOSCRIPT ${mode === "throw" ? "thrown" : "rejected"} by EVALSHA falls back to EVAL, whose plain value is used`, async () => {
      const { adapter, sent } = standIn(mode);
      const held = await tryLock(unique(`plain-${mode}`), { redis: adapter });
      assert.ok(held, "acquired");
      assert.equal(held.token, 1_795_730_000_000_000);
      assert.deepEqual(sent.slice(0, 2), ["EVALSHA", "EVAL"]);
      await held.release();
      assert.deepEqual(sent.slice(-2), ["EVALSHA", "EVAL"], "the release went the same way");
    });

    test(`an EVAL that ${mode === "throw" ? "throws" : "rejects"} after NOSCRIPT gives a LockError, not a TypeError`, async () => {
      const { adapter, sent } = standIn(mode, "ERR something broke");
      const error = await tryLock(unique(`fail-${mode}`), { redis: adapter }).catch((e) => e);
      assert.ok(error instanceof LockError, String(error));
      assert.match(error.message, /something broke/);
      // (The kind then cancels the try by owner, in the background.)
      assert.deepEqual(sent.slice(0, 2), ["EVALSHA", "EVAL"]);
    });
  }
});

describeRedis("a wait given up with its Redis try in flight", () => {
  test("the next waiter in this process waits until that try is undone: never two holders", async () => {
    const server = await startRedisServer();
    const clients = [0, 1, 2].map(() => new Redis({ port: server.port, host: "127.0.0.1" }));
    try {
      const [ours, other, third] = clients.map((c) => adaptRedisClient(c));
      // Our client, with one command that can be held back on the wire.
      let holdNext = false;
      const heldBack: Array<() => void> = [];
      const delaying: RedisAdapter = {
        name: "delaying",
        send(args) {
          if (!holdNext) return ours.send(args);
          holdNext = false;
          return new Promise((resolve, reject) =>
            heldBack.push(() => ours.send(args).then(resolve, reject))
          );
        },
        openSubscriber: () => ours.openSubscriber!(),
      };
      const name = unique("abandoned");
      const p = await lock(name, { redis: other, ttl: 3_000 });
      const abortA = new AbortController();
      const a = lock(name, { redis: delaying, ttl: 3_000, signal: abortA.signal });
      a.catch(() => {});
      const b = lock(name, { redis: delaying, ttl: 3_000, timeout: 10_000 });
      // A queues in Redis, then one of its renewal tries is held back, and
      // A gives up while it is out. B shares A's target (one per client and
      // key), and so its owner id for as long as A's try may land.
      await sleep(300);
      holdNext = true;
      for (let i = 0; i < 200 && heldBack.length === 0; i++) await sleep(10);
      assert.equal(heldBack.length, 1, "A's try held back");
      abortA.abort();
      await assert.rejects(a, LockAbortedError);
      await p.release();
      await sleep(200);
      heldBack[0](); // A's try lands at last: it may be handed the lock
      const held = await within(b, 8_000, "B's grant");
      await sleep(300); // for A's late try, and its undoing, to have run
      try {
        assert.equal(
          await tryLock(name, { redis: third, ttl: 3_000 }),
          null,
          "a third client while B holds",
        );
        assert.equal(held.signal.aborted, false);
      } finally {
        await held.release();
      }
    } finally {
      for (const c of clients) c.disconnect();
      await server.stop();
    }
  });
});

describeRedis("a queue with more dead waiters than one call drops", () => {
  test("a newcomer never overtakes the live waiter behind 200 dead ones, and that waiter gets the lock", async () => {
    const server = await startRedisServer();
    const clients = [0, 1, 2].map(() => new Redis({ port: server.port, host: "127.0.0.1" }));
    const [holderClient, waiterClient, newcomerClient] = clients;
    try {
      const name = unique("dead-ahead");
      const key = `socketlock:${name}`;
      const held = await lock(name, { redis: holderClient, ttl: 5_000 });
      const waiting = lock(name, { redis: waiterClient, ttl: 5_000, timeout: 10_000 });
      for (let i = 0; i < 200 && (await holderClient.zcard(`${key}:queue`)) === 0; i++) {
        await sleep(10);
      }
      // 200 waiters that died long ago, queued ahead of the live one: more
      // than the release and the newcomer's try drop (64 each).
      const nowMs = Date.now();
      for (let i = 0; i < 200; i++) {
        await holderClient.zadd(`${key}:queue`, i + 1, `dead-${i}`);
        await holderClient.hset(
          `${key}:waiters`,
          `dead-${i}`,
          `${nowMs - 10_000} 5000 2000 00aa {"owner":"dead-${i}"`,
        );
      }
      await held.release();
      assert.equal(
        await tryLock(name, { redis: newcomerClient, ttl: 5_000 }),
        null,
        "a newcomer right after the release",
      );
      // Busy: either nobody holds it yet, and nobody is named (dead waiters
      // may hide a live one), or the live waiter (of this process) already
      // has it — on a loaded machine its own tries may drop the dead first.
      await assert.rejects(
        lock(name, { redis: newcomerClient, ttl: 5_000, timeout: 0 }),
        (error) =>
          error instanceof LockBusyError &&
          (error.holder === null || error.holder.pid === process.pid),
      );
      const got = await within(waiting, 5_000, "the live waiter's grant");
      await got.release();
    } finally {
      for (const c of clients) c.disconnect();
      await server.stop();
    }
  });
});

describe("info() of a lock just handed over", () => {
  test("renewedAt counts from the hand-off while the key lives its claim time, from the last renewal after", () => {
    const now = 1_800_000_000_000;
    const head = '{"owner":"o","pid":1,"host":"h","ttl":30000,"lease":20000';
    // Handed over 21 ms ago: the key lives PX claim (2000) until its first renewal.
    const claimed = holderInfo(
      "x",
      "k",
      `${head},"claim":2000,"acquiredAt":${now},"token":7}`,
      1979,
      now,
    );
    assert.equal(claimed.renewedAt, now - 21);
    // Renewed 1 s ago: the key lives PX ttl.
    const renewed = holderInfo("x", "k", `${head},"acquiredAt":${now},"token":7}`, 29_000, now);
    assert.equal(renewed.renewedAt, now - 1_000);
  });
});
