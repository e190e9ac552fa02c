import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { InvalidLockNameError, lock, LockError, tryLock, validateLockName } from "../mod.ts";

describe("lock names", () => {
  test("ordinary names, unicode and dots inside a name are accepted", () => {
    for (
      const name of ["nightly-report", "a", "job:42@host", "é漢字🔒", "a.b", "..a", "x".repeat(200)]
    ) {
      assert.equal(validateLockName(name), name);
    }
  });

  test("paths, NUL, control characters, dot names and 4 KB names throw InvalidLockNameError", async () => {
    const bad = [
      "",
      ".",
      "..",
      "../x",
      "a/b",
      "a\\b",
      "a\0b",
      "tab\there",
      "x".repeat(4096),
      "é".repeat(101),
    ];
    for (const name of bad) {
      assert.throws(() => validateLockName(name), InvalidLockNameError, JSON.stringify(name));
      const error = await tryLock(name).catch((e) => e);
      assert.ok(error instanceof InvalidLockNameError && error instanceof LockError);
      assert.match(error.message, /Invalid lock name .*: .+\. Use 1 to 200 bytes/);
    }
  });

  test("a non-string name is rejected with a clear error", async () => {
    const error = await lock(42 as unknown as string).catch((e) => e);
    assert.ok(error instanceof InvalidLockNameError);
  });
});
