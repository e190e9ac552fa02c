// held.signal read for the first time after release() says nothing was
// lost: the lock was given back. (The socket kind's check, started by that
// first read, found its own released file gone a second later and aborted.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { lock } from "../mod.ts";
import { tempDir } from "./_processes.ts";

for (const kind of ["socket", "folder", "port"] as const) {
  test(`${kind}: held.signal first read after release() never aborts`, async () => {
    const dir = await tempDir();
    try {
      const held = await lock("after-release", { kind, dir });
      await held.release();
      const signal = held.signal;
      await new Promise((resolve) => setTimeout(resolve, 1_600));
      assert.equal(signal.aborted, false, `aborted: ${signal.reason}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}
