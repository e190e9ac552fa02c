// Small files are read bounded: a huge file planted where a lock file, a
// `.last`, a bid or a token file belongs (in compat mode the shared temp dir
// lets another user put one at our path) is refused or judged garbage at
// once, never read whole into memory.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmod, readdir, stat, truncate, utimes, writeFile } from "node:fs/promises";
import process from "node:process";
import {
  FolderLock,
  inspect,
  lock,
  LockError,
  type LockOptions,
  LockPermissionError,
  tryLock,
} from "../mod.ts";
import { errorCode, runtime } from "../lib/runtime/mod.ts";
import { readTextSync } from "../lib/runtime/_sync_files.ts";
import { GARBAGE_GRACE_MS } from "../lib/folder/challenge_bid.ts";
import { readTokenFile } from "../lib/cli/serve_command.ts";
import { randomHex } from "../lib/socket/handshake.ts";
import { tempDirsRemovedAfter } from "./_processes.ts";

const newDir = tempDirsRemovedAfter();

/** The documented bound of a small file's read. */
const MAX_TEXT_BYTES = 64 * 1024;

/** Sparse: a GiB of size that takes no disk and no time to make. */
const HUGE = 2 ** 30;

/** Far more than reading 64 KiB takes, far less than reading a GiB. */
const QUICK_MS = 1_000;

async function planted(path: string, size = HUGE): Promise<string> {
  await writeFile(path, "");
  await truncate(path, size);
  return path;
}

/** Runs `op`, failing if it takes longer than {@link QUICK_MS}. */
async function quickly<T>(op: () => Promise<T>): Promise<T> {
  const start = performance.now();
  try {
    return await op();
  } finally {
    const ms = performance.now() - start;
    assert.ok(ms < QUICK_MS, `took ${Math.round(ms)} ms`);
  }
}

async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error) => {
    assert.equal(errorCode(error), code, String(error));
    return true;
  });
}

describe("bounded reads of small files", () => {
  describe("runtime.readFile", () => {
    test("a 1 GiB sparse file throws EFBIG at once, unread", async () => {
      const path = await planted(`${await newDir()}/huge`);
      await quickly(() => rejectsWithCode(runtime.readFile(path), "EFBIG"));
    });

    test("a file of 64 KiB reads whole, one byte more throws EFBIG", async () => {
      const dir = await newDir();
      const limit = "x".repeat(MAX_TEXT_BYTES);
      await writeFile(`${dir}/limit`, limit);
      assert.equal(await runtime.readFile(`${dir}/limit`), limit);
      await writeFile(`${dir}/over`, `${limit}x`);
      await rejectsWithCode(runtime.readFile(`${dir}/over`), "EFBIG");
    });

    test("a 10 KiB file still reads whole", async () => {
      const path = `${await newDir()}/ten`;
      const text = "0123456789".repeat(1024);
      await writeFile(path, text);
      assert.equal(await runtime.readFile(path), text);
    });

    test("/proc/self/stat still reads", { skip: process.platform !== "linux" }, async () => {
      const text = await runtime.readFile("/proc/self/stat");
      assert.match(text, /^\d+ \(.*\) [A-Z] /);
    });

    test("a read until the end (a /proc table) is not bounded", async () => {
      const path = `${await newDir()}/table`;
      const text = "row\n".repeat(MAX_TEXT_BYTES);
      await writeFile(path, text);
      assert.equal(readTextSync(path, true), text);
    });
  });

  for (const compat of [false, true]) {
    const mode = compat ? "compat mode" : "native mode";
    describe(`socket kind, ${mode}`, () => {
      async function setup() {
        const dir = await newDir();
        const name = `big-${randomHex(4)}`;
        const options: LockOptions = compat ? { dir, compat: "socketlock" } : { dir };
        const file = `${dir}/${compat ? "." : ""}${name}.lock`;
        const last = compat ? `${file}.last.${runtime.uid()}` : `${file}.last`;
        return { name, options, file, last };
      }

      test("a 1 GiB lock file is garbage, unread: broken at once and the lock taken", async () => {
        const { name, options, file } = await setup();
        await planted(file);
        assert.equal(await quickly(() => inspect(name, options)), null);
        const held = await quickly(() => tryLock(name, options));
        assert.ok(held);
        assert.ok((await stat(file)).size < MAX_TEXT_BYTES, "ours replaced it");
        assert.equal(await tryLock(name, options), null);
        await held.release();
      });

      test("a 1 GiB .last is garbage: the lock is taken at once and tokens still grow", async () => {
        const { name, options, last } = await setup();
        await planted(last);
        const first = await quickly(() => lock(name, options));
        await first.release();
        const second = await quickly(() => lock(name, options));
        await second.release();
        assert.ok(first.token < second.token, `${first.token} < ${second.token}`);
        assert.ok((await stat(last)).size < MAX_TEXT_BYTES, "our release replaced it");
      });
    });
  }

  test("socket kind: a 1 GiB key file is refused at once with a LockPermissionError", async () => {
    const dir = await newDir();
    await chmod(await planted(`${dir}/socketlock.key`), 0o600);
    const error = await quickly(() => lock("k", { dir }).catch((e) => e));
    assert.ok(error instanceof LockPermissionError, String(error));
    assert.match(error.message, /does not hold a socketlock key/);
  });

  describe("folder kind", () => {
    test("a fresh 1 GiB bid is garbage that does not block; an old one is cleared", async () => {
      const path = `${await newDir()}/locks`;
      const folder = new FolderLock(path);
      assert.equal(await folder.tryAcquire(), true); // creates the folder
      await folder.release();
      const bid = await planted(`${path}/huge.json`);
      assert.equal(await quickly(() => folder.tryAcquire()), true);
      await folder.release();
      assert.ok((await readdir(path)).includes("huge.json"));
      const old = (Date.now() - GARBAGE_GRACE_MS - 5_000) / 1000;
      await utimes(bid, old, old);
      assert.equal(await quickly(() => folder.tryAcquire()), true);
      await folder.release();
      assert.equal((await readdir(path)).includes("huge.json"), false);
    });
  });

  describe("lock server", () => {
    test("a 1 GiB --token-file is refused at once with a LockError naming it", async () => {
      const path = await planted(`${await newDir()}/token`);
      await quickly(() =>
        assert.rejects(readTokenFile(path), (error) => {
          assert.ok(error instanceof LockError, String(error));
          assert.ok(error.message.includes(path), error.message);
          assert.equal(errorCode(error.cause), "EFBIG");
          return true;
        })
      );
    });
  });
});
