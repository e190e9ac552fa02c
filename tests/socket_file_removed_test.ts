// A socket-kind lock file removed or replaced under a live holder (its lock
// directory removed by a logout cleaning $XDG_RUNTIME_DIR, tmpfiles, rm; a
// maxAge break): the next contender takes the lock, so a holder that reads
// held.signal must be told, with a LockLostError. The check never keeps the
// process alive, and a released lock is never reported lost.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import { lock, LockLostError } from "../mod.ts";
import { HELD_CHECK_MS } from "../lib/_held_check.ts";
import { type Child, childRuntimes, fixture, spawnScript, tempDir } from "./_processes.ts";
import { eventually } from "./_waiting.ts";

describe("socket kind: a lock file removed or replaced under its holder", () => {
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
  const aborted = (signal: AbortSignal) => eventually(() => signal.aborted, 4 * HELD_CHECK_MS);

  for (const rt of childRuntimes(0)) {
    test(`the lock directory removed: a ${rt} process takes the lock, and the holder's signal aborts`, async () => {
      const locks = await dir();
      const held = await lock("job", { dir: locks, timeout: 5_000 });
      try {
        const signal = held.signal;
        await rm(locks, { recursive: true, force: true });
        const other = spawnScript(rt, fixture("hold_lock.ts"), [
          JSON.stringify({ dir: locks, timeout: 20_000 }),
          "job",
        ]);
        kids.push(other);
        await other.waitFor("held", 20_000);
        assert.ok(await aborted(signal), "the holder was not told");
        assert.ok(signal.reason instanceof LockLostError, `${signal.reason}`);
        assert.match(signal.reason.message, /lock file .* was removed or replaced/);
        other.process.kill("SIGKILL");
        await other.done;
      } finally {
        await held.release();
      }
    });
  }

  test("a maxAge break tells the holder it was broken", async () => {
    const locks = await dir();
    const held = await lock("old", { dir: locks, timeout: 5_000 });
    try {
      const signal = held.signal;
      // maxAge is at least 1 s.
      await new Promise((resolve) => setTimeout(resolve, 1_050));
      const other = spawnScript(childRuntimes(1)[0], fixture("hold_lock.ts"), [
        JSON.stringify({ dir: locks, timeout: 20_000, maxAge: 1_000 }),
        "old",
      ]);
      kids.push(other);
      await other.waitFor("held", 20_000);
      assert.ok(await aborted(signal), "the holder was not told");
      assert.match(signal.reason.message, /maxAge break/);
      other.process.kill("SIGKILL");
      await other.done;
    } finally {
      await held.release().catch(() => {});
    }
  });

  test("a held lock whose file stays is not lost, nor is one after its release", async () => {
    const locks = await dir();
    const held = await lock("job", { dir: locks, timeout: 5_000 });
    const signal = held.signal;
    // Checked at least once meanwhile.
    await new Promise((resolve) => setTimeout(resolve, HELD_CHECK_MS * 1.5));
    assert.equal(signal.aborted, false);
    await held.release();
    await new Promise((resolve) => setTimeout(resolve, HELD_CHECK_MS * 1.5));
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
          `const held = await lock("job", { dir: ${JSON.stringify(root)} });\n` +
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
