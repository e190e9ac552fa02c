// Compat mode's breaker lock is named by the lock file's path (there is no
// shared key file in the temp dir), so processes that spell one directory
// differently — through a symlinked parent, with "./" or a trailing slash —
// must still come to one path, or their breakers would not shut each other out.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, realpath, rm, symlink } from "node:fs/promises";
import { tryLock } from "../mod.ts";
import { runtime } from "../lib/runtime/mod.ts";
import { breakerKey } from "../lib/socket/break_stale_lock.ts";
import { randomHex } from "../lib/socket/handshake.ts";
import { lockPaths } from "../lib/socket/lock_file.ts";
import { resolveSocketSettings } from "../lib/socket/socket_settings.ts";
import { tempDir } from "./_processes.ts";

describe("socket kind, compat mode: one directory, however it is spelled", () => {
  test("every spelling resolves to the real path, one lock file and one breaker lock", async () => {
    const base = await tempDir();
    try {
      await mkdir(`${base}/real/locks`, { recursive: true });
      await symlink(`${base}/real`, `${base}/link`);
      const real = await realpath(`${base}/real/locks`);
      const name = `spelled-${randomHex(4)}`;
      const spellings = [
        `${base}/real/locks`,
        `${base}/link/locks`,
        `${base}/real//locks/./`,
        `${base}/link/../real/locks/`,
      ];
      const keys = new Set<string>();
      const files = new Set<string>();
      for (const dir of spellings) {
        const s = await resolveSocketSettings(runtime, name, { compat: "socketlock", dir });
        assert.equal(s.dir, real, `${dir} resolves to the real path`);
        files.add(lockPaths(s.dir, name, true).file);
        keys.add(await breakerKey(runtime, name, null, s.dir));
      }
      assert.equal(files.size, 1);
      assert.equal(keys.size, 1, "one breaker lock for every spelling");

      const held = await tryLock(name, { compat: "socketlock", dir: spellings[1] });
      assert.ok(held);
      try {
        assert.equal(await tryLock(name, { compat: "socketlock", dir: spellings[3] }), null);
      } finally {
        await held.release();
      }
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });

  test("a symlink given as the directory itself is still refused", async () => {
    const base = await tempDir();
    try {
      await mkdir(`${base}/real`);
      await symlink(`${base}/real`, `${base}/link`);
      await assert.rejects(
        resolveSocketSettings(runtime, "x", { compat: "socketlock", dir: `${base}/link` }),
        /is a symlink/,
      );
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});
