// Compat lock "x" lives in ".x.lock", the file a native socket lock ".x"
// would use. Sharing it, each side judged the other's live holder by the
// wrong handshake and broke it under its own breaker lock (two holders of
// "x"), so a native socket lock's name may not start with ".".
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { InvalidLockNameError, lock, SocketLock, tryLock } from "../mod.ts";
import { tempDir } from "./_processes.ts";

describe("socket kind: names that would share a compat lock's file", () => {
  test("a native name starting with '.' is refused, saying which compat lock it would hit", async () => {
    const dir = await tempDir();
    try {
      for (const name of [".x", "..x", ".hidden-job"]) {
        await assert.rejects(tryLock(name, { dir }), (error: unknown) => {
          assert.ok(error instanceof InvalidLockNameError, String(error));
          assert.equal(error.lockName, name);
          assert.match(error.message, /compat lock/);
          return true;
        });
        await assert.rejects(lock(name, { dir, timeout: 0 }), InvalidLockNameError);
        await assert.rejects(new SocketLock(name, { dir }).tryAcquire(), InvalidLockNameError);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("the compat lock itself, and dots inside native names, are still fine", async () => {
    const dir = await tempDir();
    try {
      const compat = await tryLock("x", { dir, compat: "socketlock" });
      assert.ok(compat, "compat x");
      const dotted = await tryLock("a.x", { dir });
      assert.ok(dotted, "native a.x");
      const compatDot = await tryLock(".y", { dir, compat: "socketlock" });
      assert.ok(compatDot, "compat .y (its file is ..y.lock)");
      for (const held of [compat, dotted, compatDot]) await held.release();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
