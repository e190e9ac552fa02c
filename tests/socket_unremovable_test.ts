// A stale lock file we may not remove (another user's, planted at compat
// mode's path in the shared temp dir, or a directory we cannot write): the
// break fails with a LockPermissionError naming the file and what to do, not
// a raw EPERM (forced with the scripted runtime: as root, nothing is refused).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { LockPermissionError } from "../mod.ts";
import { randomHex } from "../lib/socket/handshake.ts";
import { lockPaths } from "../lib/socket/lock_file.ts";
import { socketTarget } from "../lib/socket/socket_target.ts";
import { createWorld } from "./_scripted_runtime.ts";
import { DIR, settings } from "./_socket_scenarios.ts";

describe("socket kind: a stale lock file that cannot be removed", () => {
  for (const code of ["EPERM", "EACCES"]) {
    test(`${code} gives a LockPermissionError naming the file`, async () => {
      const name = `theirs-${randomHex(4)}`;
      const world = createWorld();
      const contender = world.process(301);
      await contender.runtime.mkdir(DIR, 0o700);
      const { file } = lockPaths(DIR, name, false);
      world.files.set(file, { kind: "file", data: "not a lock file", mode: 0o644, mtimeMs: 0 });
      contender.hook = (op, path) => {
        if ((op === "remove" || op === "rename") && path === file) {
          throw Object.assign(new Error(`${code}: ${path}`), { code });
        }
      };
      const error = await socketTarget(contender.runtime, settings(name)).tryAcquire().then(
        () => null,
        (e) => e,
      );
      assert.ok(error instanceof LockPermissionError, String(error));
      assert.ok(error.message.includes(file), error.message);
      assert.equal(world.files.get(file)?.data, "not a lock file", "left as it was");
    });
  }
});
