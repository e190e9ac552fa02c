// The socket kind across real processes of all three runtimes.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { inspect, lock, LockBusyError, tryLock } from "../mod.ts";
import {
  type Child,
  childRuntimes,
  fixture,
  inOneRunner,
  RUNTIMES,
  spawnScript,
  tempDir,
} from "./_processes.ts";
import { wokenWithin } from "./_waiting.ts";

describe("socket kind across processes", () => {
  const dirs: string[] = [];
  const kids: Child[] = [];
  after(async () => {
    for (const kid of kids) kid.process.kill("SIGKILL");
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  const freshDir = async () => {
    const dir = await tempDir();
    dirs.push(dir);
    return dir;
  };
  const start = (...args: Parameters<typeof spawnScript>) => {
    const kid = spawnScript(...args);
    kids.push(kid);
    return kid;
  };

  async function countTogether(worker: string, perRuntime: number, increments: number) {
    const dir = await freshDir();
    const counter = `${dir}/counter`;
    await writeFile(counter, "0");
    const options = JSON.stringify({ kind: "socket", dir, timeout: 60_000 });
    const workers = RUNTIMES.flatMap((rt) =>
      Array.from(
        { length: perRuntime },
        () => start(rt, fixture(worker), [options, "counter", counter, String(increments)]),
      )
    );
    const results = await Promise.all(workers.map((w) => w.done));
    for (const result of results) assert.equal(result.code, 0, result.stdout + result.stderr);
    const planted = results.reduce(
      (sum, r) => sum + Number(/planted=(\d+)/.exec(r.stdout)?.[1] ?? 0),
      0,
    );
    return { count: Number(await readFile(counter, "utf8")), planted };
  }

  // Its children span every runtime: one runner of three is enough.
  if (inOneRunner(0)) {
    test("6 processes, two per runtime, each adding 100 under the lock, count exactly 600", async () => {
      assert.equal((await countTogether("counter_worker.ts", 2, 100)).count, 600);
    });
  }

  // Its children span every runtime: one runner of three is enough.
  if (inOneRunner(1)) {
    test("6 processes breaking the stale lock files planted between their holds never overlap", async () => {
      // Each worker checks exclusivity itself (an O_EXCL marker) and exits 1 on overlap.
      const { count, planted } = await countTogether("socket_stale_worker.ts", 2, 20);
      assert.equal(count, 120);
      assert.ok(planted >= 5, `only ${planted} stale files were planted`);
    });
  }

  test("while another process holds the lock, tryLock() is null and LockBusyError names the verified holder", async () => {
    const dir = await freshDir();
    const holder = start("node", fixture("socket_holder.ts"), [
      JSON.stringify({ kind: "socket", dir }),
      "busy",
      "-1",
    ]);
    await holder.waitFor("held");
    const [, pid, , port] = holder.stdout().trim().split(" ");
    assert.equal(await tryLock("busy", { dir }), null);
    await assert.rejects(lock("busy", { dir, timeout: 0 }), (error: unknown) => {
      assert.ok(error instanceof LockBusyError);
      assert.equal(error.holder?.pid, Number(pid));
      assert.equal(error.holder?.port, Number(port));
      assert.ok(Math.abs(Date.now() - (error.holder?.acquiredAt ?? 0)) < 60_000);
      assert.match(error.message, new RegExp(`pid ${pid}`));
      return true;
    });
    assert.equal((await inspect("busy", { dir }))?.pid, Number(pid));
    holder.process.kill("SIGKILL");
  });

  for (const rt of childRuntimes(0)) {
    // Mostly the death wakes the waiter (the OS closes the connection the
    // holder's handshake answered on), but the waiter may try again before
    // the dying process has closed its listener too, meet a connection
    // closed unanswered from a pid not reaped yet, and only find the death
    // at its next poll: so the default backoff, and a bound loose enough
    // for a loaded machine.
    test(`a SIGKILLed ${rt} holder's lock is taken by a waiter within seconds`, async () => {
      const dir = await freshDir();
      const holder = start(rt, fixture("socket_holder.ts"), [
        JSON.stringify({ kind: "socket", dir }),
        "crash",
        "-1",
      ]);
      await holder.waitFor("held");
      const deadToken = Number(holder.stdout().trim().split(" ")[2]);
      const waiting = lock("crash", { kind: "socket", dir, timeout: 20_000 });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const killedAt = performance.now();
      holder.process.kill("SIGKILL");
      const held = await waiting;
      const took = performance.now() - killedAt;
      assert.ok(took < 5_000, `took ${took} ms`);
      assert.ok(held.token > deadToken, "the token moved past the dead holder's");
      await held.release();
    });

    test(`a waiter gets a ${rt} holder's lock by a wake-up at its release, never by polling`, async () => {
      const dir = await freshDir();
      const holder = start(rt, fixture("socket_holder.ts"), [
        JSON.stringify({ kind: "socket", dir }),
        "handoff",
        "400",
      ]);
      await holder.waitFor("held");
      // A generous handshake timeout: a holder slowed by load must not look
      // silent (then unwatched).
      const held = await wokenWithin(
        10_000,
        (wake) => lock("handoff", { dir, handshakeTimeout: 5_000, ...wake }),
      );
      await holder.waitFor("released");
      await held.release();
    });
  }
});
