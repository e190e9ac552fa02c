// The lock directory's key as breaks and releases need it: current. One
// lstat confirms the file read before, if it was read well after it was
// made; a replaced or changed file, or one read too soon to tell, is read
// again, and one that cannot be confirmed is not used.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmod, rename, rm, utimes, writeFile } from "node:fs/promises";
import { LockPermissionError } from "../mod.ts";
import { runtime } from "../lib/runtime/mod.ts";
import type { Runtime } from "../lib/runtime/mod.ts";
import { KEY_FILE, loadSecret } from "../lib/socket/secret.ts";
import { tempDir } from "./_processes.ts";

/** The real runtime, counting reads of the key file. */
function countingReads(): { runtime: Runtime; reads: () => number } {
  let reads = 0;
  const counted: Runtime = Object.create(runtime);
  counted.readFile = (path) => {
    if (path.endsWith(`/${KEY_FILE}`)) reads++;
    return runtime.readFile(path);
  };
  return { runtime: counted, reads: () => reads };
}

function keyOf(byte: string): string {
  return `${byte.repeat(32)}\n`;
}

async function replaceKey(dir: string, text: string): Promise<void> {
  await writeFile(`${dir}/new.tmp`, text, { mode: 0o600 });
  await rename(`${dir}/new.tmp`, `${dir}/${KEY_FILE}`);
}

describe("the lock directory's key, kept current", () => {
  test("a key file read well after it was made is confirmed without being read again", async () => {
    const dir = await tempDir();
    const { runtime: counted, reads } = countingReads();
    await replaceKey(dir, keyOf("ab"));
    const past = new Date(Date.now() - 10_000);
    await utimes(`${dir}/${KEY_FILE}`, past, past);
    const first = await loadSecret(counted, dir);
    const readsAfterLoad = reads();
    for (let i = 0; i < 3; i++) assert.deepEqual(await loadSecret(counted, dir, true), first);
    assert.equal(reads(), readsAfterLoad, "a confirmed key is not read again");
    await rm(dir, { recursive: true, force: true });
  });

  test("a key read right after it was made is read again, even if its replacement looks the same", async () => {
    const dir = await tempDir();
    const { runtime: counted } = countingReads();
    await replaceKey(dir, keyOf("ab"));
    assert.equal((await loadSecret(counted, dir))[0], 0xab);
    // The directory made again within one timestamp grain: the new key file
    // gets the freed inode, and the same size, mode, owner and mtime.
    const looked = await runtime.lstat(`${dir}/${KEY_FILE}`);
    await writeFile(`${dir}/${KEY_FILE}`, keyOf("cd"));
    counted.lstat = () => Promise.resolve(looked);
    assert.equal((await loadSecret(counted, dir, true))[0], 0xcd, "the new key, read again");
    await rm(dir, { recursive: true, force: true });
  });

  test("a key read again with the same bytes is the same array, so what is cached by it is found again", async () => {
    const dir = await tempDir();
    const { runtime: counted, reads } = countingReads();
    await replaceKey(dir, keyOf("ef"));
    const first = await loadSecret(counted, dir);
    const again = await loadSecret(counted, dir, true); // read too soon to confirm: read again
    assert.equal(reads(), 2);
    assert.equal(again, first, "the same array (the breaker keys are cached by it)");
    await rm(dir, { recursive: true, force: true });
  });

  test("a key file replaced under a running process is read again by a fresh load", async () => {
    const dir = await tempDir();
    const { runtime: counted } = countingReads();
    await replaceKey(dir, keyOf("ab"));
    assert.equal((await loadSecret(counted, dir))[0], 0xab);
    await replaceKey(dir, keyOf("cd"));
    assert.equal((await loadSecret(counted, dir))[0], 0xab, "a plain load keeps the key read");
    assert.equal((await loadSecret(counted, dir, true))[0], 0xcd, "a fresh load reads the new one");
    assert.equal((await loadSecret(counted, dir))[0], 0xcd, "and keeps it");
    await rm(dir, { recursive: true, force: true });
  });

  test("a key file removed is made anew by a fresh load", async () => {
    const dir = await tempDir();
    const { runtime: counted } = countingReads();
    const before = await loadSecret(counted, dir);
    await rm(`${dir}/${KEY_FILE}`);
    const after = await loadSecret(counted, dir, true);
    assert.notDeepEqual(after, before);
    assert.deepEqual(await loadSecret(counted, dir, true), after);
    await rm(dir, { recursive: true, force: true });
  });

  test("a key file opened to others since it was read is refused, not confirmed", async () => {
    const dir = await tempDir();
    const { runtime: counted } = countingReads();
    await loadSecret(counted, dir);
    await chmod(`${dir}/${KEY_FILE}`, 0o644);
    await assert.rejects(loadSecret(counted, dir, true), LockPermissionError);
    await rm(dir, { recursive: true, force: true });
  });

  test("a key file that cannot be looked at fails the load", async () => {
    const dir = await tempDir();
    const { runtime: counted } = countingReads();
    await loadSecret(counted, dir);
    counted.lstat = () => Promise.reject(Object.assign(new Error("EMFILE"), { code: "EMFILE" }));
    await assert.rejects(loadSecret(counted, dir, true), /EMFILE/);
    await rm(dir, { recursive: true, force: true });
  });
});
