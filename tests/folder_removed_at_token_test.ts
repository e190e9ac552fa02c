// The lock folder removed between a win and its fencing token (a logout
// cleaning $XDG_RUNTIME_DIR, tmpfiles, rm -rf): nothing is held, and a
// waiting caller makes the folder again and takes the lock, as when it goes
// a moment earlier; before, the try failed with the raw ENOENT.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { runtime } from "../lib/runtime/mod.ts";
import type { Runtime } from "../lib/runtime/mod.ts";
import { folderTarget } from "../lib/folder/folder_target.ts";
import { acquire } from "../lib/_acquire.ts";
import { tempDir } from "./_processes.ts";

test("a folder removed right after the win is made again and the lock taken", async () => {
  const dir = await tempDir();
  const folder = `${dir}/x.folder`;
  let removed = false;
  const removing: Runtime = {
    ...runtime,
    async updateFile(path, update) {
      if (!removed) {
        removed = true;
        await rm(folder, { recursive: true, force: true });
      }
      return await runtime.updateFile(path, update);
    },
  };
  try {
    const result = await acquire({
      name: "x",
      kind: "folder",
      target: folderTarget(removing, "x", folder),
      runtime: removing,
      wait: true,
      timeout: 5_000,
    });
    assert.ok(removed, "the folder was removed at the token");
    assert.ok(result.held, "held after the folder was made again");
    assert.ok(result.held.token > 0);
    await result.held.release();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
