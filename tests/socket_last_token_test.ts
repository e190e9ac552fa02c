// The token floor read from `.last`: the file this process retired itself
// is taken as known (not parsed again), and only that very text; any other
// `.last`, another holder's, is parsed and outgrown.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { lock } from "../mod.ts";
import { runtime } from "../lib/runtime/mod.ts";
import { lastToken, lockPaths } from "../lib/socket/lock_file.ts";
import { tempDirsRemovedAfter } from "./_processes.ts";

const tempDir = tempDirsRemovedAfter();

describe("socket: the token floor of .last", () => {
  test("a .last that is not the file this process retired is parsed, and outgrown", async () => {
    const dir = await tempDir();
    const paths = lockPaths(dir, "floor", false);
    await (await lock("floor", { dir })).release();
    // Another holder came and went since, its clock a minute ahead: same
    // bytes but for the token, so only a byte-for-byte comparison tells.
    const ahead = Date.now() * 1000 + 60_000_000;
    const retired = await readFile(paths.last, "utf8");
    await writeFile(paths.last, retired.replace(/"token":\d+/, `"token":${ahead}`));
    const held = await lock("floor", { dir });
    try {
      assert.ok(held.token > ahead, `token ${held.token} outgrows ${ahead}`);
    } finally {
      await held.release();
    }
  });

  test("lastToken takes the token of a .last that is exactly the given own file", async () => {
    const dir = await tempDir();
    const paths = lockPaths(dir, "own", false);
    const text = '{"kind":"socket","pid":1,"port":80,"acquiredAt":1,"token":7}';
    await writeFile(paths.last, text);
    assert.equal(await lastToken(runtime, paths, { text, token: 9 }), 9);
    assert.equal(await lastToken(runtime, paths, { text: `${text} `, token: 9 }), 7);
    assert.equal(await lastToken(runtime, paths), 7);
  });
});
