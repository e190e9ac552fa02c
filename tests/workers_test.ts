// Locks from workers (web Workers in Deno and Bun, worker_threads in Node):
// workers exclude each other and the main thread exactly as processes do,
// and a terminated or crashed worker leaves no lock behind.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { inspect, lock, tryLock, withLock } from "../mod.ts";
import type { LockKind } from "../mod.ts";
import { Redis } from "ioredis";
import { KINDS } from "../lib/_kinds.ts";
import { type LockServer, serve } from "../lib/server/mod.ts";
import { startWorker, type TestWorker } from "./_workers.ts";
import { tempDir } from "./_processes.ts";
import { describeRedis, type RedisServer, startRedisServer } from "./_redis_server.ts";

const WORKER = new URL("./fixtures/worker_lock.ts", import.meta.url);

for (const kind of KINDS as readonly LockKind[]) {
  const suite = kind === "redis" ? describeRedis : describe;
  suite(`kind "${kind}" from workers`, () => {
    const workers: TestWorker[] = [];
    const dirs: string[] = [];
    let lockServer: LockServer | undefined;
    let redisServer: RedisServer | undefined;
    let redis: Redis | undefined;
    before(async () => {
      if (kind === "server") lockServer = await serve({ port: 0 });
      if (kind === "redis") {
        redisServer = await startRedisServer();
        redis = new Redis({ host: "127.0.0.1", port: redisServer.port });
      }
    });
    after(async () => {
      for (const worker of workers) await worker.terminate();
      await lockServer?.close();
      redis?.disconnect();
      await redisServer?.stop();
      for (const dir of dirs) await rm(dir, { recursive: true, force: true });
    });
    /** Options for this thread, and their serializable twin for a worker. */
    async function setup() {
      const dir = await tempDir();
      dirs.push(dir);
      // Lease kinds: a terminated worker's lease must run out within a second.
      const common = {
        kind,
        dir,
        timeout: 30_000,
        ...(lockServer ? { server: `127.0.0.1:${lockServer.address.port}`, ttl: 600 } : {}),
        ...(redis ? { ttl: 600 } : {}),
      };
      return {
        dir,
        name: `w-${crypto.randomUUID().slice(0, 8)}`,
        options: { ...common, ...(redis ? { redis } : {}) },
        workerOptions: { ...common, ...(redisServer ? { redisPort: redisServer.port } : {}) },
      };
    }

    test("two workers and the main thread contend on one name and the count is exact", async () => {
      const { dir, name, options, workerOptions } = await setup();
      const file = `${dir}/counter`;
      await writeFile(file, "0");
      const started = await Promise.all(
        [1, 2].map(() =>
          startWorker(WORKER, { mode: "counter", name, options: workerOptions, file, count: 40 })
        ),
      );
      workers.push(...started);
      for (let i = 0; i < 40; i++) {
        await withLock(name, options, async () => {
          const value = Number(await readFile(file, "utf8"));
          await new Promise((resolve) => setTimeout(resolve, 0));
          await writeFile(file, String(value + 1));
        });
      }
      await Promise.all(started.map((w) => w.waitFor("done", 60_000)));
      assert.equal(Number(await readFile(file, "utf8")), 120);
    });

    test("a worker holding the lock is terminated and the main thread acquires within seconds", async () => {
      const { name, options, workerOptions } = await setup();
      const worker = await startWorker(WORKER, { mode: "hold", name, options: workerOptions });
      workers.push(worker);
      await worker.waitFor("held");
      assert.equal(await tryLock(name, options), null, "the worker holds it");
      const holder = await inspect(name, options);
      assert.ok(holder, "inspect() sees the worker's lock");
      // pid 0: the kind cannot tell who holds (the port kind); others name the isolate.
      if (holder.pid !== 0) {
        const workerInfo = JSON.parse(worker.messages[0].slice(5));
        assert.equal(holder.pid, workerInfo.pid);
        assert.ok(holder.isolate, "the info names the holding isolate");
        assert.equal(holder.isolate, workerInfo.isolate);
      }
      const waiting = lock(name, { ...options, timeout: 20_000 });
      const terminated = performance.now();
      await worker.terminate();
      const held = await waiting;
      const took = performance.now() - terminated;
      // Loose, for a loaded machine: the lease kinds' 600 ms ttl, or the
      // next poll finding the dead isolate gone, is far below it.
      assert.ok(took < 5_000, `took ${took} ms`);
      await held.release();
    });

    test("a worker that throws inside withLock leaves the lock free", async () => {
      const { name, options, workerOptions } = await setup();
      const worker = await startWorker(WORKER, { mode: "throw", name, options: workerOptions });
      workers.push(worker);
      await worker.waitFor("throwing");
      const deadline = Date.now() + 10_000;
      while (worker.errors.length === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.match(worker.errors.join(" "), /boom inside withLock/);
      const held = await lock(name, { ...options, timeout: 1_000 });
      await held.release();
    });
  });
}
