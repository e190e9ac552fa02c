// The lock objects (SocketLock, FolderLock, ...) hold one lock at a time
// through _held_slot.ts: a release() made while another is under way waits
// for it, rather than resolving while the lock is still held.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { inspect } from "../mod.ts";
import { SocketLock } from "../lib/socket/mod.ts";
import { FolderLock } from "../lib/folder/mod.ts";
import { tempDir } from "./_processes.ts";

describe("lock objects: a second release() while the first is under way", () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  test("SocketLock: resolves only once the lock is free", async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const held = new SocketLock("obj", { dir });
    assert.ok(await held.tryAcquire());
    const first = held.release();
    await held.release();
    assert.equal(await inspect("obj", { dir }), null, "resolved while the lock was still held");
    await first;
  });

  test("FolderLock: resolves only once the lock is free", async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const held = new FolderLock(`${dir}/f`);
    assert.ok(await held.tryAcquire());
    const first = held.release();
    await held.release();
    const other = new FolderLock(`${dir}/f`);
    const got = await other.tryAcquire();
    if (got) await other.release();
    await first;
    assert.ok(got, "resolved while the lock was still held");
  });
});
