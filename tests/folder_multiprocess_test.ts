// The folder kind across real processes of all three runtimes.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { lock } from "../mod.ts";
import { acquire } from "../lib/_acquire.ts";
import { folderTarget } from "../lib/folder/folder_target.ts";
import { runtime } from "../lib/runtime/mod.ts";
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

  // Its children span every runtime: one runner of three is enough.
  if (inOneRunner(2)) {
    test("6 processes, two per runtime, each adding 100 under the lock, count exactly 600", async () => {
      assert.equal(await counterRun(2, 100), 600);
    });
  }

  // Its children span every runtime: one runner of three is enough.
  if (inOneRunner(0)) {
    test("9 contending processes all get through despite check-bid-check's livelock", async () => {
      assert.equal(await counterRun(3, 15), 135);
    });
  }

  for (const rt of childRuntimes(1)) {
    test(`a waiter wakes when a ${rt} holder's bid goes, not at its next poll, and other bids coming and going wake it not`, async () => {
      const dir = await tempDir();
      dirs.push(dir);
      const holder = spawnScript(rt, fixture("socket_holder.ts"), [
        JSON.stringify({ kind: "folder", dir }),
        "wake",
        "1000", // long enough, on a loaded machine, for the waiter's first try to find it held
      ]);
      kids.push(holder);
      await holder.waitFor("held");
      const folder = `${dir}/wake.folder`;
      const target = folderTarget(runtime, "wake", folder);
      let tries = 0;
      const counted = { ...target, tryAcquire: () => (tries++, target.tryAcquire()) };
      const waiting = wokenWithin(10_000, (wake) =>
        acquire({
          name: "wake",
          kind: "folder",
          target: counted,
          runtime,
          wait: true,
          ...wake,
        }));
      // Other waiters' bids, and junk, come and go meanwhile.
      for (let i = 0; i < 20; i++) {
        await writeFile(`${folder}/other-${i}.json`, "{}");
        await rm(`${folder}/other-${i}.json`);
      }
      await holder.waitFor("released");
      const result = await waiting;
      assert.ok(result.held, "the waiter holds the lock");
      assert.equal(tries, 2, "one try before, one after the holder let go");
      await result.held.release();
    });

    // A dead holder's bid stays (nothing wakes a waiter): the waiter's next
    // poll (at most 100 ms apart by default) finds its beacon gone.
    test(`a SIGKILLed ${rt} holder's lock is taken by a polling waiter within seconds`, async () => {
      const dir = await tempDir();
      dirs.push(dir);
      const holder = spawnScript(rt, fixture("hold_lock.ts"), [
        JSON.stringify({ kind: "folder", dir }),
        "crash",
      ]);
      kids.push(holder);
      await holder.waitFor("held");
      const waiting = lock("crash", { kind: "folder", dir, timeout: 20_000 });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const killedAt = performance.now();
      holder.process.kill("SIGKILL");
      const held = await waiting;
      const took = performance.now() - killedAt;
      // Loose, for a loaded machine: it catches a dead bid left standing.
      assert.ok(took < 5_000, `took ${took} ms`);
      assert.ok(held.token >= 2, "the token moved past the dead holder's");
      await held.release();
    });
  }
});
