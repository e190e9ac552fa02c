// The folder kind's fencing tokens keep growing when the counter is lost:
// the lock folder removed and made again (a logout cleaning
// $XDG_RUNTIME_DIR), `token` deleted or set lower. A missing counter goes on
// from the clock in µs; each process never gives a token at or below one it
// gave in that folder before.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import { FolderLock, lock, LockError } from "../mod.ts";
import { folderTarget } from "../lib/folder/folder_target.ts";
import { createWorld } from "./_scripted_runtime.ts";
import {
  type Child,
  childRuntimes,
  fixture,
  spawnScript,
  tempDirsRemovedAfter,
} from "./_processes.ts";

describe("folder kind: tokens across a lost counter", () => {
  const kids: Child[] = [];
  after(() => kids.forEach((kid) => kid.process.kill("SIGKILL")));
  const dir = tempDirsRemovedAfter();

  test("a lock folder removed and made again goes on above every earlier token", async () => {
    const locks = await dir();
    const tokens: number[] = [];
    for (let i = 0; i < 3; i++) {
      const held = await lock("t", { kind: "folder", dir: locks, timeout: 5_000 });
      tokens.push(held.token);
      await held.release();
    }
    await rm(locks, { recursive: true, force: true });
    const held = await lock("t", { kind: "folder", dir: locks, timeout: 5_000 });
    tokens.push(held.token);
    await held.release();
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1], `${tokens}`);
  });

  for (const rt of childRuntimes(0)) {
    test(`a ${rt} process taking the lock in a folder made again goes on above this one's tokens`, async () => {
      const locks = await dir();
      let last = 0;
      for (let i = 0; i < 3; i++) {
        const held = await lock("t", { kind: "folder", dir: locks, timeout: 5_000 });
        last = held.token;
        await held.release();
      }
      await rm(locks, { recursive: true, force: true });
      // The other process has no floor of its own here: only the clock.
      const other = spawnScript(rt, fixture("hold_lock.ts"), [
        JSON.stringify({ kind: "folder", dir: locks, timeout: 20_000 }),
        "t",
      ]);
      kids.push(other);
      await other.waitFor("held", 20_000);
      const token = Number(other.stdout().match(/held \d+ (\d+)/)![1]);
      assert.ok(token > last, `${last} -> ${token}`);
      other.process.kill("SIGKILL");
      await other.done;
    });
  }

  test("one process never gives a token at or below one it gave, whatever the counter and the clock say", async () => {
    const world = createWorld();
    world.files.set("/locks", { kind: "dir", data: "", mode: 0o700, mtimeMs: 0 });
    const folder = "/locks/x.folder";
    world.files.set(folder, { kind: "dir", data: "", mode: 0o700, mtimeMs: 0 });
    const { runtime } = world.process(101);
    const take = async () => {
      const attempt = await folderTarget(runtime, "x", folder).tryAcquire();
      assert.ok(attempt.acquired);
      await attempt.grant.release();
      return attempt.grant.token;
    };
    const first = await take();
    assert.ok(first >= Date.now() * 1000 - 60_000_000, "a new folder starts from the clock");
    // The counter deleted while the clock was stepped back an hour.
    world.files.delete(`${folder}/token`);
    const now = runtime.now;
    runtime.now = () => now() - 3_600_000;
    assert.equal(await take(), first + 1);
    // The whole folder removed and made again, the clock still behind.
    for (const path of [...world.files.keys()]) {
      if (path === folder || path.startsWith(`${folder}/`)) world.files.delete(path);
    }
    assert.equal(await take(), first + 2);
    // A counter set lower than what this process gave (a valid counter).
    world.files.set(`${folder}/token`, { kind: "file", data: "41", mode: 0o600, mtimeMs: 0 });
    assert.equal(await take(), first + 3);
    // A counter above it is gone on from.
    const ahead = String(first + 1_000).padStart(16, "0");
    world.files.set(`${folder}/token`, { kind: "file", data: ahead, mode: 0o600, mtimeMs: 0 });
    assert.equal(await take(), first + 1_001);
    // Another process (no floor of its own) goes on from the counter as usual.
    const other = world.process(102).runtime;
    const attempt = await folderTarget(other, "x", folder).tryAcquire();
    assert.ok(attempt.acquired);
    assert.equal(attempt.grant.token, first + 1_002);
    await attempt.grant.release();
  });

  test("a process that gave 2^53 - 1 in a folder refuses to start lower when the counter is removed", async () => {
    const path = `${await dir()}/locks`;
    const lock = new FolderLock(path);
    assert.equal(await lock.tryAcquire(), true);
    await lock.release();
    await writeFile(`${path}/token`, String(Number.MAX_SAFE_INTEGER - 1));
    assert.equal(await lock.tryAcquire(), true);
    assert.equal(lock.held!.token, Number.MAX_SAFE_INTEGER);
    await lock.release();
    await rm(`${path}/token`);
    await assert.rejects(lock.tryAcquire(), (error: Error) => {
      assert.ok(error instanceof LockError, `${error.name}: ${error.message}`);
      assert.match(error.message, /already gave 9007199254740991.*remove .*token.*restart/s);
      return true;
    });
  });
});
