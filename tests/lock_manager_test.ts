// lockManager(): the Web Locks API's request()/query() over the kinds.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { LockError, lockManager, tryLock } from "../mod.ts";
import process from "node:process";
import { Redis } from "ioredis";
import { childRuntimes, fixture, spawnScript, tempDir } from "./_processes.ts";
import { describeRedis, startRedisServer } from "./_redis_server.ts";
import { eventually } from "./_waiting.ts";

const dir = await tempDir("socketlock-manager-");
after(() => rm(dir, { recursive: true, force: true }));
const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("lockManager()", () => {
  const locks = lockManager({ dir });

  test("request() holds the lock while the callback runs and resolves with its result", async () => {
    const name = unique("result");
    const result = await locks.request(name, async (lock) => {
      assert.equal(lock?.name, name);
      assert.equal(lock?.mode, "exclusive");
      assert.ok(lock!.token > 0);
      assert.equal(await tryLock(name, { dir }), null, "held while the callback runs");
      return 42;
    });
    assert.equal(result, 42);
    const after = await tryLock(name, { dir });
    assert.ok(after, "released once the callback settled");
    await after.release();
  });

  test("requests for one name run one after another, in order", async () => {
    const name = unique("order");
    const log: string[] = [];
    await Promise.all([1, 2, 3].map((i) =>
      locks.request(name, async () => {
        log.push(`in ${i}`);
        await sleep(5);
        log.push(`out ${i}`);
      })
    ));
    assert.deepEqual(log, ["in 1", "out 1", "in 2", "out 2", "in 3", "out 3"]);
  });

  test("a callback that throws releases the lock and rejects with its error", async () => {
    const name = unique("throws");
    await assert.rejects(locks.request(name, () => Promise.reject(new Error("boom"))), /boom/);
    const again = await tryLock(name, { dir });
    assert.ok(again);
    await again.release();
  });

  test("query() lists held and pending requests", async () => {
    const name = unique("query");
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const counts = async () => {
      const { held, pending } = await locks.query();
      return [held, pending].map((list) => list.filter((e) => e.name === name).length).join(" ");
    };
    const first = locks.request(name, () => gate);
    assert.ok(await eventually(async () => (await counts()) === "1 0"), "the first one holds");
    const second = locks.request(name, () => "second");
    assert.ok(await eventually(async () => (await counts()) === "1 1"), "the second one waits");
    const snapshot = await locks.query();
    assert.deepEqual(snapshot.held.filter((e) => e.name === name).length, 1);
    assert.deepEqual(snapshot.pending.filter((e) => e.name === name).length, 1);
    assert.equal(snapshot.held[0].clientId, String(process.pid));
    release();
    assert.equal(await second, "second");
    await first;
    assert.deepEqual(await locks.query(), { held: [], pending: [] });
  });

  for (const rt of childRuntimes(2)) {
    test(`ifAvailable calls back with null while a ${rt} process holds the lock`, async () => {
      const name = unique(`avail-${rt}`);
      const holder = spawnScript(rt, fixture("hold_lock.ts"), [JSON.stringify({ dir }), name]);
      try {
        await holder.waitFor("held", 30_000);
        const seen = await locks.request(name, { ifAvailable: true }, (lock) => lock);
        assert.equal(seen, null);
      } finally {
        process.kill(holder.pid, "SIGKILL");
        await holder.done;
      }
      const seen = await locks.request(name, { ifAvailable: true }, (lock) => lock?.name);
      assert.equal(seen, name, "free once the holder died");
    });
  }

  test("an aborted signal ends the wait with the signal's reason, as navigator.locks does", async () => {
    const name = unique("abort");
    const held = await tryLock(name, { dir });
    try {
      const controller = new AbortController();
      const waiting = locks.request(name, { signal: controller.signal }, () => "never");
      setTimeout(() => controller.abort(), 20);
      await assert.rejects(waiting, (error) => {
        assert.ok(error instanceof DOMException && error.name === "AbortError", String(error));
        assert.equal(error, controller.signal.reason);
        return true;
      });
      const custom = new AbortController();
      const reason = new Error("shutting down");
      const again = locks.request(name, { signal: custom.signal }, () => "never");
      setTimeout(() => custom.abort(reason), 20);
      await assert.rejects(again, (error) => error === reason);
    } finally {
      await held!.release();
    }
  });

  test("ifAvailable with a signal, and options that are not an object, are refused with a LockError", async () => {
    await assert.rejects(
      locks.request("x", { ifAvailable: true, signal: new AbortController().signal }, () => {}),
      (error) => error instanceof LockError && /ifAvailable with a signal/.test(error.message),
    );
    // deno-lint-ignore no-explicit-any
    assert.throws(() => lockManager(null as any), LockError);
  });

  test("shared mode and steal are refused with a LockError saying why", async () => {
    await assert.rejects(
      locks.request("x", { mode: "shared" }, () => {}),
      (error) => error instanceof LockError && /exclusive/.test(error.message),
    );
    await assert.rejects(
      locks.request("x", { steal: true }, () => {}),
      (error) => error instanceof LockError && /live holder/.test(error.message),
    );
  });
});

describeRedis("lockManager() when the release fails", () => {
  test("the callback's own error is what request() rejects with, not the failed release's", async () => {
    const server = await startRedisServer();
    const client = new Redis({ port: server.port, host: "127.0.0.1", lazyConnect: true });
    client.on("error", () => {});
    try {
      await client.connect();
      const manager = lockManager({ redis: client });
      const error = await manager.request(`failing-${crypto.randomUUID()}`, () => {
        // The release that follows cannot reach Redis.
        client.disconnect();
        throw new Error("the callback's own error");
      }).catch((e) => e);
      assert.equal((error as Error).message, "the callback's own error");
    } finally {
      client.disconnect();
      await server.stop();
    }
  });
});
