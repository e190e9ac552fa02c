// A local-kind lock whose own file is removed or replaced under a live holder
// (its lock directory removed by a logout cleaning $XDG_RUNTIME_DIR,
// tmpfiles, rm; a folder bid deleted; a socket-kind maxAge break): the next
// contender takes the lock, so a holder that reads held.signal must be told,
// with a LockLostError (lib/_held_check.ts). The check never keeps the process
// alive, and a released lock is never reported lost.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import { FolderLock, lock, LockLostError, type LockOptions } from "../mod.ts";
import { HELD_CHECK_MS, type HeldCheck, HeldCheckOnDemand } from "../lib/_held_check.ts";
import {
  type Child,
  childRuntimes,
  fixture,
  type RuntimeName,
  spawnScript,
  tempDirsRemovedAfter,
} from "./_processes.ts";
import { eventually } from "./_waiting.ts";

const newDir = tempDirsRemovedAfter();
const kids: Child[] = [];
after(() => kids.forEach((kid) => kid.process.kill("SIGKILL")));

const aborted = (signal: AbortSignal) => eventually(() => signal.aborted, 4 * HELD_CHECK_MS);
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Another process of `rt` taking `name` with `options`, once it holds it. */
async function otherHolder(rt: RuntimeName, name: string, options: LockOptions) {
  const other = spawnScript(rt, fixture("hold_lock.ts"), [
    JSON.stringify(options),
    name,
  ]);
  kids.push(other);
  await other.waitFor("held", 20_000);
  return {
    token: Number(other.stdout().match(/held \d+ (\d+)/)![1]),
    stop: () => other.process.kill("SIGKILL"),
  };
}

const KINDS = [
  { kind: "socket", lost: /lock file .* was removed or replaced/ },
  { kind: "folder", lost: /bid .* was deleted/ },
] as const;

for (const { kind, lost } of KINDS) {
  describe(`${kind} kind: its own file removed under the holder`, () => {
    for (const rt of childRuntimes(0)) {
      test(`the lock directory removed: a ${rt} process takes the lock, and the holder's signal aborts`, async () => {
        const dir = await newDir();
        const held = await lock("job", { kind, dir, timeout: 5_000 });
        try {
          const signal = held.signal;
          await rm(dir, { recursive: true, force: true });
          const other = await otherHolder(rt, "job", { kind, dir, timeout: 20_000 });
          assert.ok(await aborted(signal), "the holder was not told");
          assert.ok(signal.reason instanceof LockLostError, `${signal.reason}`);
          assert.match(signal.reason.message, lost);
          // The new holder's token fences the old one out.
          assert.ok(other.token > held.token, `${held.token} -> ${other.token}`);
          other.stop();
        } finally {
          await held.release();
        }
      });
    }

    test("a held lock whose file stays is not lost, nor is one after its release", async () => {
      const dir = await newDir();
      const held = await lock("job", { kind, dir, timeout: 5_000 });
      const signal = held.signal;
      await pause(HELD_CHECK_MS * 1.5); // checked at least once meanwhile
      assert.equal(signal.aborted, false);
      await held.release();
      await rm(dir, { recursive: true, force: true });
      await pause(HELD_CHECK_MS * 1.5);
      assert.equal(signal.aborted, false, "a released lock reported lost");
    });

    for (const rt of childRuntimes(1)) {
      test(`a ${rt} holder that reads held.signal and never releases still exits on its own`, async () => {
        const dir = await newDir();
        const script = `${dir}/hold_and_read_signal.ts`;
        const mod = new URL("../mod.ts", import.meta.url).href;
        await writeFile(
          script,
          `import { lock } from ${JSON.stringify(mod)};\n` +
            `const held = await lock("job", ${JSON.stringify({ kind, dir })});\n` +
            `held.signal.addEventListener("abort", () => console.log("lost"));\n` +
            `console.log("held", held.token);\n`,
        );
        const child = spawnScript(rt, script);
        kids.push(child);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const exited = await Promise.race([
          child.done,
          new Promise<null>((resolve) => timer = setTimeout(resolve, 20_000, null)),
        ]).finally(() => clearTimeout(timer));
        assert.ok(exited, "still running after 20 s");
        assert.equal(exited.code, 0, exited.stderr);
        assert.match(exited.stdout, /^held \d+\n$/);
      });
    }
  });
}

describe("kind-specific losses", () => {
  test("folder: held.signal first read after the bid is gone aborts too, and a FolderLock's bid deleted alone", async () => {
    const dir = await newDir();
    const held = await lock("job", { kind: "folder", dir, timeout: 5_000 });
    await rm(dir, { recursive: true, force: true });
    assert.ok(await aborted(held.signal), "not checked after the first read");
    await held.release();

    const folder = new FolderLock(`${dir}/own`);
    assert.equal(await folder.tryAcquire(), true);
    await rm(String(folder.held!.info.bid));
    assert.ok(await aborted(folder.held!.signal));
    assert.ok(folder.held!.signal.reason instanceof LockLostError);
    await folder.release();
  });

  test("socket: a maxAge break tells the holder it was broken", async () => {
    const dir = await newDir();
    const held = await lock("old", { dir, timeout: 5_000 });
    try {
      const signal = held.signal;
      await pause(1_050); // maxAge is at least 1 s
      const other = await otherHolder(childRuntimes(1)[0], "old", {
        dir,
        timeout: 20_000,
        maxAge: 1_000,
      });
      assert.ok(await aborted(signal), "the holder was not told");
      assert.match(signal.reason.message, /maxAge break/);
      other.stop();
    } finally {
      await held.release().catch(() => {});
    }
  });
});

describe("HeldCheckOnDemand", () => {
  function counting() {
    const made = { starts: 0, stops: 0 };
    const controller = new AbortController();
    const start = (): HeldCheck => {
      made.starts++;
      return {
        signal: controller.signal,
        stop: () => void made.stops++,
        lostAlready: () => controller.signal.aborted,
      };
    };
    return { made, start, controller };
  }

  test("lostAlready() never starts the check, and tells a loss the running check found", () => {
    const { made, start, controller } = counting();
    const check = new HeldCheckOnDemand(start);
    assert.equal(check.lostAlready(), false);
    assert.equal(made.starts, 0, "asking started nothing");
    assert.equal(check.signal.aborted, false); // the holder reads its signal: started
    controller.abort();
    assert.equal(check.lostAlready(), true);
  });

  test("starts the check at the first read of its signal, once, and stops it", () => {
    const { made, start } = counting();
    const check = new HeldCheckOnDemand(start);
    assert.equal(made.starts, 0, "nothing runs before a read");
    assert.equal(check.signal, check.signal);
    assert.equal(made.starts, 1);
    check.stop();
    assert.equal(made.stops, 1);
  });

  test("a signal first read after stop() belongs to a check stopped at once", () => {
    const { made, start } = counting();
    const check = new HeldCheckOnDemand(start);
    check.stop();
    assert.equal(check.signal.aborted, false);
    assert.deepEqual(made, { starts: 1, stops: 1 });
  });
});
