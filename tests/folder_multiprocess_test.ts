// The folder kind across real processes of all three runtimes.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { lock } from "../mod.ts";
import { type Child, fixture, RUNTIMES, spawnScript, tempDir } from "./_processes.ts";

describe("folder kind across processes", () => {
  const dirs: string[] = [];
  const kids: Child[] = [];
  after(async () => {
    for (const kid of kids) kid.process.kill("SIGKILL");
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  async function counterRun(perRuntime: number, increments: number) {
    const dir = await tempDir();
    dirs.push(dir);
    const counter = `${dir}/counter`;
    await writeFile(counter, "0");
    const options = JSON.stringify({ kind: "folder", dir, timeout: 60_000 });
    const workers = RUNTIMES.flatMap((rt) =>
      Array.from(
        { length: perRuntime },
        () =>
          spawnScript(rt, fixture("counter_worker.ts"), [
            options,
            "counter",
            counter,
            String(increments),
          ]),
      )
    );
    kids.push(...workers);
    const results = await Promise.all(workers.map((w) => w.done));
    for (const result of results) assert.equal(result.code, 0, result.stderr);
    return Number(await readFile(counter, "utf8"));
  }

  test("6 processes, two per runtime, each adding 100 under the lock, count exactly 600", async () => {
    assert.equal(await counterRun(2, 100), 600);
  });

  test("9 contending processes all get through despite check-bid-check's livelock", async () => {
    assert.equal(await counterRun(3, 15), 135);
  });

  for (const rt of RUNTIMES) {
    test(`a SIGKILLed ${rt} holder's lock is taken by a waiter within a second`, async () => {
      const dir = await tempDir();
      dirs.push(dir);
      const holder = spawnScript(rt, fixture("hold_lock.ts"), [
        JSON.stringify({ kind: "folder", dir }),
        "crash",
      ]);
      kids.push(holder);
      await holder.waitFor("held");
      const waiting = lock("crash", { kind: "folder", dir, timeout: 10_000 });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const killedAt = performance.now();
      holder.process.kill("SIGKILL");
      const held = await waiting;
      const took = performance.now() - killedAt;
      assert.ok(took < 1_000, `took ${took} ms`);
      assert.ok(held.token >= 2, "the token moved past the dead holder's");
      await held.release();
    });
  }
});
