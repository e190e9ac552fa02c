// A folder lock's bid deleted under a live holder (the lock folder removed by
// a logout cleaning $XDG_RUNTIME_DIR, tmpfiles, rm; or the bid itself): the
// next contender takes the lock, so a holder that reads held.signal must be
// told, with a LockLostError. The check never keeps the process alive, and
// a released lock is never reported lost.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import { FolderLock, lock, LockLostError } from "../mod.ts";
import { OWN_BID_CHECK_MS } from "../lib/folder/own_bid_check.ts";
import { type Child, childRuntimes, fixture, spawnScript, tempDir } from "./_processes.ts";
import { eventually } from "./_waiting.ts";

describe("folder kind: a bid deleted under its holder", () => {
  const dirs: string[] = [];
  const kids: Child[] = [];
  after(async () => {
    for (const kid of kids) kid.process.kill("SIGKILL");
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  async function dir(): Promise<string> {
    const made = await tempDir();
    dirs.push(made);
    return made;
  }
  const aborted = (signal: AbortSignal, ms: number) => eventually(() => signal.aborted, ms);

  for (const rt of childRuntimes(0)) {
    test(`the lock folder removed: a ${rt} process takes the lock, and the holder's signal aborts`, async () => {
      const locks = await dir();
      const held = await lock("job", { kind: "folder", dir: locks, timeout: 5_000 });
      try {
        const signal = held.signal;
        await rm(locks, { recursive: true, force: true });
        const other = spawnScript(rt, fixture("hold_lock.ts"), [
          JSON.stringify({ kind: "folder", dir: locks, timeout: 20_000 }),
          "job",
        ]);
        kids.push(other);
        await other.waitFor("held", 20_000);
        assert.ok(await aborted(signal, 4 * OWN_BID_CHECK_MS), "the holder was not told");
        assert.ok(signal.reason instanceof LockLostError, `${signal.reason}`);
        assert.match(signal.reason.message, /bid .* was deleted/);
        // The new holder's token fences the old one out.
        const token = Number(other.stdout().match(/held \d+ (\d+)/)![1]);
        assert.ok(token > held.token, `${held.token} -> ${token}`);
        other.process.kill("SIGKILL");
        await other.done;
      } finally {
        await held.release();
      }
    });
  }

  test("held.signal first read after the bid is gone aborts too, and a FolderLock's bid deleted alone", async () => {
    const locks = await dir();
    const held = await lock("job", { kind: "folder", dir: locks, timeout: 5_000 });
    await rm(locks, { recursive: true, force: true });
    assert.ok(await aborted(held.signal, 4 * OWN_BID_CHECK_MS), "not checked after the first read");
    await held.release();

    const folder = new FolderLock(`${locks}/own`);
    assert.equal(await folder.tryAcquire(), true);
    await rm(String(folder.held!.info.bid));
    assert.ok(await aborted(folder.held!.signal, 4 * OWN_BID_CHECK_MS));
    assert.ok(folder.held!.signal.reason instanceof LockLostError);
    await folder.release();
  });

  test("a held lock whose bid stays is not lost, nor is one after its release", async () => {
    const locks = await dir();
    const held = await lock("job", { kind: "folder", dir: locks, timeout: 5_000 });
    const signal = held.signal;
    // Checked at least once meanwhile.
    await new Promise((resolve) => setTimeout(resolve, OWN_BID_CHECK_MS * 1.5));
    assert.equal(signal.aborted, false);
    await held.release();
    await rm(locks, { recursive: true, force: true });
    await new Promise((resolve) => setTimeout(resolve, OWN_BID_CHECK_MS * 1.5));
    assert.equal(signal.aborted, false, "a released lock reported lost");
  });

  for (const rt of childRuntimes(1)) {
    test(`a ${rt} holder that reads held.signal and never releases still exits on its own`, async () => {
      const root = await dir();
      const script = `${root}/hold_and_read_signal.ts`;
      const mod = new URL("../mod.ts", import.meta.url).href;
      await writeFile(
        script,
        `import { lock } from ${JSON.stringify(mod)};\n` +
          `const held = await lock("job", { kind: "folder", dir: ${JSON.stringify(root)} });\n` +
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
