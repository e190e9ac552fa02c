// Compat mode's edges: a file left by a live process that stopped answering
// is broken once its 2 s grace is over, by tryLock() and lock() calls too
// (each opens its target afresh), however far apart; a directory planted at the per-user
// `.last` does not stop releases or breaks; a bad `dir` is a LockError.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, rm, writeFile } from "node:fs/promises";
import process from "node:process";
import { lock, LockError, tryLock } from "../mod.ts";
import { runtime } from "../lib/runtime/mod.ts";
import { randomHex } from "../lib/socket/handshake.ts";
import { lockPaths } from "../lib/socket/lock_file.ts";
import { freePort, tempDir } from "./_processes.ts";

/** A compat lock file left by a live process (ours) that stopped answering: its port refuses. */
async function refusingLiveFile(label: string): Promise<{ dir: string; name: string }> {
  const dir = await tempDir();
  const name = `${label}-${randomHex(4)}`;
  await writeFile(
    `${dir}/.${name}.lock`,
    JSON.stringify({
      port: await freePort(),
      pid: process.pid,
      timestamp: Date.now() / 1000 - 60,
      name,
    }),
    { mode: 0o600 },
  );
  return { dir, name };
}

describe("socket kind, compat mode: edges", () => {
  test("a live pid's file whose port refuses is broken by tryLock once its grace is over", async () => {
    const { dir, name } = await refusingLiveFile("grace");
    try {
      const started = Date.now();
      let held = null;
      for (let i = 0; i < 20 && !held; i++) {
        held = await tryLock(name, { dir, compat: "socketlock" });
        if (!held) await new Promise((resolve) => setTimeout(resolve, 250));
      }
      assert.ok(held, "the file was never broken by tryLock");
      assert.ok(Date.now() - started >= 1_900, "not before its grace is over");
      await held.release();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("tryLock calls further apart than twice the grace still break such a file", async () => {
    const { dir, name } = await refusingLiveFile("spaced");
    try {
      assert.equal(await tryLock(name, { dir, compat: "socketlock" }), null, "in its grace");
      await new Promise((resolve) => setTimeout(resolve, 4_200));
      const held = await tryLock(name, { dir, compat: "socketlock" });
      assert.ok(held, "seen 4.2 s ago and still refusing: past its grace");
      await held.release();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a directory at the per-user .last name: releases and breaks go on without it", async () => {
    const dir = await tempDir();
    const name = `lastdir-${randomHex(4)}`;
    try {
      // Not empty: Deno's remove then says ENOTEMPTY, unlink elsewhere EISDIR.
      const last = lockPaths(dir, name, true, runtime.uid()).last;
      await mkdir(last);
      await writeFile(`${last}/inside`, "x");
      const held = await tryLock(name, { dir, compat: "socketlock" });
      assert.ok(held);
      await held.release();
      const again = await lock(name, { dir, compat: "socketlock", timeout: 5_000 });
      await again.release();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a dir that is empty, under a file, not a string or has NUL is a LockError in both modes", async () => {
    const base = await tempDir();
    await writeFile(`${base}/afile`, "x");
    try {
      for (const dir of ["", `${base}/afile/sub`, `${base}/no\0nul`, 42]) {
        for (const compat of [undefined, "socketlock"] as const) {
          const error = await tryLock("x", { dir, compat } as never).then(
            (held) => held?.release().then(() => "accepted"),
            (e) => e,
          );
          assert.ok(error instanceof LockError, `${compat} ${JSON.stringify(dir)}: ${error}`);
        }
      }
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});
