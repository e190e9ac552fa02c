// The contracts every kind keeps, checked for each registered kind within
// one process: waiting, FIFO, timeouts, abort, release, inspect, tokens.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import {
  inspect,
  lock,
  LockAbortedError,
  LockBusyError,
  LockError,
  LockTimeoutError,
  tryLock,
  withLock,
} from "../mod.ts";
import type { LockOptions } from "../mod.ts";
import { acquire } from "../lib/_acquire.ts";
import type { LockTarget } from "../lib/_kind.ts";
import { runtime } from "../lib/runtime/mod.ts";
import { KINDS } from "../lib/_kinds.ts";
import { tempDir } from "./_processes.ts";
import { freedAfterRelease, NO_POLLING, takenAfterRelease } from "./_waiting.ts";
import { Redis } from "ioredis";
import { describeRedis, type RedisServer, startRedisServer } from "./_redis_server.ts";
import { type LockServer, serve } from "../lib/server/mod.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;

for (const kind of KINDS) {
  // The redis kind needs a redis-server (and says SKIPPED loudly without one).
  const suite = kind === "redis" ? describeRedis : describe;
  suite(`lock() with kind "${kind}"`, () => {
    const dirs: string[] = [];
    let redisServer: RedisServer | undefined;
    let redis: Redis | undefined;
    if (kind === "redis") {
      before(async () => {
        redisServer = await startRedisServer();
        redis = new Redis({ port: redisServer.port, host: "127.0.0.1" });
      });
    }
    // The server kind: one in-process lock server for the suite.
    let lockServer: LockServer | undefined;
    if (kind === "server") {
      before(async () => {
        lockServer = await serve({ port: 0 });
      });
    }
    after(async () => {
      await lockServer?.close();
      redis?.disconnect();
      await redisServer?.stop();
      for (const dir of dirs) await rm(dir, { recursive: true, force: true });
    });
    // After a release the port kind is polled (see freedAfterRelease): a lock
    // still busy reads as null there, so that the poll tries again.
    const busyAsNull = (error: unknown) => {
      if (error instanceof LockBusyError) return null;
      throw error;
    };

    async function options(extra: LockOptions = {}): Promise<LockOptions> {
      const dir = await tempDir();
      dirs.push(dir);
      const server = lockServer ? { server: `127.0.0.1:${lockServer.address.port}` } : {};
      return { kind, dir, ...(redis ? { redis } : {}), ...server, ...extra };
    }

    test("tryLock() returns null while another holder in this process has the lock", async () => {
      const opts = await options();
      const name = unique("busy");
      const held = await lock(name, opts);
      try {
        assert.equal(await tryLock(name, opts), null);
      } finally {
        await held.release();
      }
      const again = await takenAfterRelease(kind, () => tryLock(name, opts));
      assert.ok(again, "free again after release");
      await again.release();
    });

    test("a held lock's fields and signal read through a Proxy and an object derived from it", async () => {
      const held = await lock(unique("receiver"), await options());
      try {
        const wrapped = new Proxy(held, {});
        assert.equal(wrapped.token, held.token);
        assert.equal(wrapped.signal, held.signal);
        assert.equal((Object.create(held) as typeof held).signal, held.signal);
        assert.equal(held.signal.aborted, false);
      } finally {
        await held.release();
      }
    });

    test("waiters in one process get the lock one at a time in FIFO order", async () => {
      const opts = await options({ timeout: 10_000 });
      const name = unique("fifo");
      const first = await lock(name, opts);
      const order: number[] = [];
      let inside = 0;
      const waiters = [1, 2, 3].map(async (n) => {
        await sleep(n * 5);
        const held = await lock(name, opts);
        inside++;
        assert.equal(inside, 1, "only one holder at a time");
        order.push(n);
        await sleep(2);
        inside--;
        await held.release();
      });
      await sleep(40);
      await first.release();
      await Promise.all(waiters);
      assert.deepEqual(order, [1, 2, 3]);
    });

    test("lock() with a timeout throws LockTimeoutError naming the holder", async () => {
      const opts = await options();
      const name = unique("timeout");
      const held = await lock(name, opts);
      try {
        const started = performance.now();
        const error = await lock(name, { ...opts, timeout: 60 }).catch((e) => e);
        assert.ok(error instanceof LockTimeoutError, String(error));
        assert.ok(performance.now() - started >= 55);
        assert.match(error.message, /Timed out after 60 ms/);
        assert.equal(error.holder?.pid, held.info.pid);
      } finally {
        await held.release();
      }
    });

    test("an AbortSignal cancels a wait at once with LockAbortedError", async () => {
      const opts = await options();
      const name = unique("abort");
      const held = await lock(name, opts);
      try {
        const controller = new AbortController();
        // Its backoff would try again only after a minute: a wait that ends
        // well before that was ended by the abort, not by its next try. (A
        // 50 ms bound here failed under load: one GC pause or a busy CPU.)
        const waiting = lock(name, { ...opts, retry: NO_POLLING, signal: controller.signal })
          .catch((e) => e);
        await sleep(20);
        const aborted = performance.now();
        controller.abort();
        const error = await waiting;
        assert.ok(error instanceof LockAbortedError, String(error));
        const took = performance.now() - aborted;
        assert.ok(took < 10_000, `the wait ended ${took.toFixed(0)} ms after the abort`);
        const pre = await lock(name, { ...opts, signal: AbortSignal.abort() }).catch((e) => e);
        assert.ok(pre instanceof LockAbortedError);
      } finally {
        await held.release();
      }
    });

    test("lock() with timeout 0 throws LockBusyError carrying the holder's pid", async () => {
      const opts = await options();
      const name = unique("nowait");
      const held = await lock(name, opts);
      try {
        const error = await lock(name, { ...opts, timeout: 0 }).catch((e) => e);
        assert.ok(error instanceof LockBusyError, String(error));
        assert.equal(error.holder?.pid, held.info.pid);
        assert.match(error.message, /socketlock status/);
      } finally {
        await held.release();
      }
    });

    test("release() is idempotent and Symbol.asyncDispose releases", async () => {
      const opts = await options();
      const name = unique("release");
      const held = await lock(name, opts);
      await held.release();
      await held.release();
      const second = await takenAfterRelease(
        kind,
        () => lock(name, { ...opts, timeout: 0 }).catch(busyAsNull),
      );
      assert.ok(second, "free again after release");
      await second[Symbol.asyncDispose]();
      const third = await takenAfterRelease(
        kind,
        () => lock(name, { ...opts, timeout: 0 }).catch(busyAsNull),
      );
      assert.ok(third, "free again after the dispose");
      await third.release();
    });

    test("withLock() releases the lock when the callback throws", async () => {
      const opts = await options();
      const name = unique("with");
      await assert.rejects(
        withLock(name, opts, () => {
          throw new Error("boom");
        }),
        /boom/,
      );
      assert.equal(await withLock(name, opts, () => 42), 42);
    });

    test("inspect() returns the holder's info while held and null when free", async () => {
      const opts = await options();
      const name = unique("inspect");
      assert.equal(await inspect(name, opts), null);
      const held = await lock(name, opts);
      try {
        const info = await inspect(name, opts);
        assert.equal(info?.kind, kind);
        assert.equal(info?.name, name);
        assert.equal(info?.pid, held.info.pid);
        assert.equal(info?.token, held.token);
        assert.equal(held.signal.aborted, false);
      } finally {
        await held.release();
      }
      assert.ok(
        await freedAfterRelease(kind, async () => await inspect(name, opts) === null),
        "free after release",
      );
    });

    test("fencing tokens grow with every acquisition of a name", async () => {
      const opts = await options();
      const name = unique("token");
      const tokens: number[] = [];
      for (let i = 0; i < 4; i++) {
        const held = await lock(name, opts);
        tokens.push(held.token);
        assert.equal(held.info.token, held.token);
        await held.release();
      }
      for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1], `${tokens}`);
    });
  });
}

describe("the wait loop and withLock facing mistakes and races", () => {
  test("an abort that lands while a try is under way ends the wait at once", async () => {
    const controller = new AbortController();
    const target: LockTarget = {
      key: `abort-race-${crypto.randomUUID()}`,
      tryAcquire: () => {
        controller.abort();
        // A kind that wakes its waiter itself: no poll would end the wait.
        return Promise.resolve({
          acquired: false,
          holder: null,
          wake: new Promise<void>(() => {}),
          wakesItself: true,
        });
      },
      inspect: () => Promise.resolve(null),
    };
    const started = performance.now();
    const error = await acquire({
      name: "abort-race",
      kind: "socket",
      target,
      runtime,
      wait: true,
      signal: controller.signal,
    }).catch((e) => e);
    assert.ok(error instanceof LockAbortedError, String(error));
    assert.ok(performance.now() - started < 1_000);
  });

  test("withLock without its function, or lock() with options that are not an object, a bad retry or a kind that conflicts with server/redis, fail before any wait", async () => {
    const dir = await tempDir();
    try {
      const held = await lock("mistake", { dir });
      const started = performance.now();
      await assert.rejects(
        // deno-lint-ignore no-explicit-any
        (withLock as any)("mistake", async () => {}),
        (e: unknown) => e instanceof LockError && /third argument/.test(e.message),
      );
      // deno-lint-ignore no-explicit-any
      await assert.rejects(lock("mistake", null as any), /options must be an object/);
      // A retry that is not an object, or whose delays are upside down.
      for (const retry of [5, "fast", null, { minDelay: 50, maxDelay: 10 }]) {
        await assert.rejects(
          // deno-lint-ignore no-explicit-any
          lock("mistake", { dir, retry: retry as any }),
          (e: unknown) => e instanceof LockError && /Option retry/.test(e.message),
        );
      }
      // A kind that is not the one a connection option is for: never a
      // quietly local lock where one across hosts was meant.
      await assert.rejects(
        lock("mistake", { dir, kind: "folder", server: "127.0.0.1:1" }),
        (e: unknown) => e instanceof LockError && /conflicts with option server/.test(e.message),
      );
      await assert.rejects(
        // deno-lint-ignore no-explicit-any
        lock("mistake", { dir, kind: "socket", redis: {} as any }),
        (e: unknown) => e instanceof LockError && /conflicts with option redis/.test(e.message),
      );
      assert.ok(performance.now() - started < 1_000, "no wait for the held lock");
      await held.release();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
