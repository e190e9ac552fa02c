// A socket-kind lock directory that exists but cannot be written (a
// read-only file system, no write permission): a LockPermissionError naming
// the directory, as the folder kind gives, not the raw EROFS/EACCES of
// creating the key file or the lock file's temp file (forced with the
// scripted runtime: as root, nothing is refused).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { LockPermissionError } from "../mod.ts";
import { socketTarget } from "../lib/socket/socket_target.ts";
import { createWorld } from "./_scripted_runtime.ts";
import { DIR, settings } from "./_socket_scenarios.ts";

describe("socket kind: a lock directory that cannot be written", () => {
  for (const code of ["EROFS", "EACCES"]) {
    for (const seeded of [false, true]) {
      test(`${code} creating files gives a LockPermissionError (${seeded ? "signatureSeed" : "key file"})`, async () => {
        const world = createWorld();
        const p = world.process(401);
        await p.runtime.mkdir(DIR, 0o700);
        p.hook = (op, path) => {
          if (op === "writeFileExclusive" || op === "writeFile") {
            throw Object.assign(new Error(`${code}: cannot write, open '${path}'`), { code });
          }
        };
        const s = settings(`ro-${code}`, seeded ? { signatureSeed: "seed" } : {});
        const error = await socketTarget(p.runtime, s).tryAcquire().then(() => null, (e) => e);
        assert.ok(
          error instanceof LockPermissionError,
          `got ${error?.constructor?.name}: ${error}`,
        );
        assert.match(error.message, new RegExp(`Cannot use lock directory ${DIR}: `));
        assert.equal((error.cause as { code?: string } | undefined)?.code, code);
      });
    }
  }
});

describe("socket kind: inspect() in a lock directory that cannot be written", () => {
  for (const code of ["EROFS", "EACCES"]) {
    test(`${code} making the key file gives a LockPermissionError`, async () => {
      const world = createWorld();
      const p = world.process(411);
      await p.runtime.mkdir(DIR, 0o700);
      p.hook = (op, path) => {
        if (op === "writeFileExclusive" || op === "writeFile") {
          throw Object.assign(new Error(`${code}: cannot write, open '${path}'`), { code });
        }
      };
      const error = await socketTarget(p.runtime, settings(`ro-inspect-${code}`)).inspect()
        .then(() => null, (e) => e);
      assert.ok(error instanceof LockPermissionError, `got ${error?.constructor?.name}: ${error}`);
    });
  }
});

describe("socket kind: release() once the lock directory cannot be written", () => {
  const writes = new Set([
    "writeFileExclusive",
    "writeFile",
    "updateFile",
    "remove",
    "rename",
    "link",
  ]);
  for (const code of ["EROFS", "EACCES"]) {
    // With a seed, the key file is first needed at the release (its breaker lock).
    for (const seeded of [false, true]) {
      test(`${code} gives a LockPermissionError (${seeded ? "signatureSeed" : "key file"})`, async () => {
        const world = createWorld();
        const p = world.process(421);
        await p.runtime.mkdir(DIR, 0o700);
        const s = settings(`ro-release-${code}-${seeded}`, seeded ? { signatureSeed: "seed" } : {});
        const attempt = await socketTarget(p.runtime, s).tryAcquire();
        assert.ok(attempt.acquired);
        p.hook = (op, path) => {
          if (writes.has(op)) {
            throw Object.assign(new Error(`${code}: cannot write, '${path}'`), { code });
          }
        };
        const error = await attempt.grant.release().then(() => null, (e) => e);
        assert.ok(
          error instanceof LockPermissionError,
          `got ${error?.constructor?.name}: ${error}`,
        );
      });
    }
  }
});
