// The port kind across real processes of all three runtimes.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { inspect, lock, PortLock, tryLock } from "../mod.ts";
import { randomHex } from "../lib/socket/handshake.ts";
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

describe("port kind across processes", () => {
  const dirs: string[] = [];
  const kids: Child[] = [];
  after(async () => {
    for (const kid of kids) kid.process.kill("SIGKILL");
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  const start = (...args: Parameters<typeof spawnScript>) => {
    const kid = spawnScript(...args);
    kids.push(kid);
    return kid;
  };
  const unique = (prefix: string) => `${prefix}-${randomHex(6)}`;

  // Its children span every runtime: one runner of three is enough.
  if (inOneRunner(1)) {
    test("6 processes, two per runtime, each adding 100 under the lock, count exactly 600", async () => {
      const dir = await tempDir();
      dirs.push(dir);
      const counter = `${dir}/counter`;
      await writeFile(counter, "0");
      const options = JSON.stringify({ kind: "port", timeout: 60_000 });
      const name = unique("counter");
      const workers = RUNTIMES.flatMap((rt) =>
        [1, 2].map(() => start(rt, fixture("counter_worker.ts"), [options, name, counter, "100"]))
      );
      const results = await Promise.all(workers.map((w) => w.done));
      for (const result of results) assert.equal(result.code, 0, result.stderr);
      assert.equal(Number(await readFile(counter, "utf8")), 600);
    });
  }

  test("while another process holds the lock, tryLock() is null, PortLock times out and inspect() says held", async () => {
    const name = unique("busy");
    const holder = start("node", fixture("socket_holder.ts"), [
      JSON.stringify({ kind: "port" }),
      name,
      "-1",
    ]);
    await holder.waitFor("held");
    assert.equal(await tryLock(name, { kind: "port" }), null);
    assert.equal(await new PortLock(name).tryAcquire(), false);
    await assert.rejects(new PortLock(name, { timeout: 100 }).acquire(), {
      name: "LockTimeoutError",
    });
    assert.equal((await inspect(name, { kind: "port" }))?.kind, "port");
    holder.process.kill("SIGKILL");
  });

  for (const rt of childRuntimes(2)) {
    // Mostly the death wakes the waiter (the OS closes its watch
    // connection), but the waiter may try again before the dying process
    // has unbound the lock, find it bound, watch a connection closed without
    // a greeting, and only find it free at its next poll: so the default
    // backoff, and a bound loose enough for a loaded machine.
    test(`a SIGKILLed ${rt} holder's lock is taken by a waiter within seconds`, async () => {
      const name = unique("crash");
      const holder = start(rt, fixture("socket_holder.ts"), [
        JSON.stringify({ kind: "port" }),
        name,
        "-1",
      ]);
      await holder.waitFor("held");
      const waiting = lock(name, { kind: "port", timeout: 20_000 });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const killedAt = performance.now();
      holder.process.kill("SIGKILL");
      const held = await waiting;
      const took = performance.now() - killedAt;
      assert.ok(took < 5_000, `took ${took} ms`);
      await held.release();
    });

    test(`a waiter gets a ${rt} holder's lock by a wake-up at its release, never by polling`, async () => {
      const name = unique("handoff");
      const holder = start(rt, fixture("socket_holder.ts"), [
        JSON.stringify({ kind: "port" }),
        name,
        "400",
      ]);
      await holder.waitFor("held");
      const heldToken = Number(holder.stdout().trim().split(" ")[2]);
      const held = await wokenWithin(10_000, (wake) => lock(name, { kind: "port", ...wake }));
      await holder.waitFor("released");
      assert.ok(held.token > heldToken, "the token grew past the holder's");
      await held.release();
    });
  }
});
