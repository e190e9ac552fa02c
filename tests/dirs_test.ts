import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { chmod, mkdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import { lock, LockPermissionError, tryLock } from "../mod.ts";
import { defaultLockDir, ensureLockDir } from "../lib/dirs.ts";
import { runtime } from "../lib/runtime/mod.ts";
import { tempDir } from "./_processes.ts";

describe("lock directories", () => {
  const made: string[] = [];
  after(async () => {
    for (const dir of made) await rm(dir, { recursive: true, force: true });
  });

  test("the default lock dir is under XDG_RUNTIME_DIR or the temp dir", () => {
    const dir = defaultLockDir(runtime);
    const xdg = runtime.env("XDG_RUNTIME_DIR");
    if (xdg) assert.equal(dir, `${xdg}/socketlock`);
    else assert.equal(dir, `${runtime.tempDir()}/socketlock-${runtime.uid()}`);
  });

  test("a missing lock dir is created with mode 0700", async () => {
    const base = await tempDir();
    made.push(base);
    const dir = `${base}/nested/locks`;
    await ensureLockDir(runtime, dir);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
  });

  test("a symlinked lock dir is refused with a message saying what to do", async () => {
    const base = await tempDir();
    made.push(base);
    await mkdir(`${base}/real`, { mode: 0o700 });
    await symlink(`${base}/real`, `${base}/link`);
    const error = await lock("x", { kind: "folder", dir: `${base}/link` }).catch((e) => e);
    assert.ok(error instanceof LockPermissionError, String(error));
    assert.match(error.message, /symlink.*pass the real path/);
  });

  test("a lock dir writable by others is refused with the chmod that fixes it", async () => {
    const base = await tempDir();
    made.push(base);
    await mkdir(`${base}/loose`);
    await chmod(`${base}/loose`, 0o777);
    const error = await lock("x", { kind: "folder", dir: `${base}/loose` }).catch((e) => e);
    assert.ok(error instanceof LockPermissionError, String(error));
    assert.match(error.message, /chmod 700/);
  });

  test("a lock dir that cannot be created gets a LockPermissionError naming it", async () => {
    const base = await tempDir();
    made.push(base);
    await writeFile(`${base}/file`, "");
    const dir = `${base}/file/locks`;
    const error = await lock("x", { kind: "folder", dir }).catch((e) => e);
    assert.ok(error instanceof LockPermissionError, String(error));
    assert.ok(error.message.includes(dir), error.message);
    assert.match(error.message, /part of its path is a file/);
  });

  test("a lock dir below a dangling symlink gets a LockPermissionError naming it", async () => {
    const base = await tempDir();
    made.push(base);
    await symlink(`${base}/nowhere`, `${base}/dangling`);
    const dir = `${base}/dangling/locks`;
    const error = await lock("x", { kind: "socket", dir }).catch((e) => e);
    assert.ok(error instanceof LockPermissionError, String(error));
    assert.ok(error.message.includes(dir), error.message);
    assert.match(error.message, /does not exist and cannot be made/);
  });

  test("in compat mode too, a dir that is a file or a dangling symlink gets a LockPermissionError", async () => {
    const base = await tempDir();
    made.push(base);
    await writeFile(`${base}/file`, "");
    await symlink(`${base}/nowhere`, `${base}/dangling`);
    for (const dir of [`${base}/file`, `${base}/dangling`]) {
      const error = await tryLock("x", { compat: "socketlock", dir }).catch((e) => e);
      assert.ok(error instanceof LockPermissionError, `${dir}: ${error}`);
    }
  });

  test("a lock dir that mkdir cannot make under an existing parent (/proc) fails at once", {
    skip: process.platform !== "linux",
  }, async () => {
    // Node's recursive mkdir loops forever there, blocking the event loop.
    const dir = `/proc/socketlock-${crypto.randomUUID()}/locks`;
    const started = performance.now();
    const error = await lock("x", { kind: "folder", dir }).catch((e) => e);
    assert.ok(error instanceof LockPermissionError, String(error));
    assert.ok(performance.now() - started < 2_000);
  });

  for (const kind of ["socket", "folder"] as const) {
    test(`a ${kind} lock dir removed while in use is made again by the next lock`, async () => {
      const base = await tempDir();
      made.push(base);
      const dir = `${base}/locks`;
      await (await lock("x", { kind, dir })).release();
      await rm(dir, { recursive: true });
      const held = await tryLock("x", { kind, dir });
      assert.ok(held, "acquired");
      assert.equal((await stat(dir)).mode & 0o777, 0o700);
      await held.release();
    });
  }
});
