// What keeps a contender from breaking a lock file it cannot prove dead: a
// holder answers for its file until the file is gone (forced with the
// scripted runtime), and a file it cannot check by handshake (written on
// another host, or signed with another key) is broken only once its pid is.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { inspect, lock, tryLock } from "../mod.ts";
import { runtime } from "../lib/runtime/mod.ts";
import { randomHex } from "../lib/socket/handshake.ts";
import { formatLockFile, lockPaths } from "../lib/socket/lock_file.ts";
import { resolveSocketSettings } from "../lib/socket/socket_settings.ts";
import { socketTarget } from "../lib/socket/socket_target.ts";
import { createWorld } from "./_scripted_runtime.ts";
import {
  DIR,
  holderPid,
  interleaving,
  pauseAt,
  settings,
  settle,
  within,
} from "./_socket_scenarios.ts";
import { freePort, tempDir } from "./_processes.ts";

describe("socket kind: a holder answers for its file until the file is gone", () => {
  interleaving(
    "a contender checking a holder paused mid-release finds it live, so the release never removes a newcomer's file",
    async () => {
      const name = `midrelease-${randomHex(4)}`;
      const world = createWorld();
      const [holder, contender, third] = [201, 202, 203].map((pid) => world.process(pid));
      await holder.runtime.mkdir(DIR, 0o700);
      const file = lockPaths(DIR, name, false).file;
      const grant = settle(await socketTarget(holder.runtime, settings(name)).tryAcquire())!;
      // The holder has re-read its file (still its own) and stops before
      // renaming it away: it must still answer the handshake for it here, or
      // the contender breaks the file, creates its own, and the holder's
      // rename then retires the contender's file.
      const paused = pauseAt(holder, (op, path) => op === "rename" && path === file);
      const releasing = grant.release();
      await within(paused.arrived, "the holder is mid-release");
      const during = settle(await socketTarget(contender.runtime, settings(name)).tryAcquire());
      paused.go();
      await within(releasing, "the holder's release returns");
      if (during) {
        assert.equal(holderPid(world, file), 202, "the contender's file outlived the release");
        assert.equal(
          settle(await socketTarget(third.runtime, settings(name)).tryAcquire()),
          null,
          "a third process finds the contender holding",
        );
        await during.release();
      } else {
        const next = settle(await socketTarget(third.runtime, settings(name)).tryAcquire());
        assert.ok(next, "the released lock is free");
        await next.release();
      }
    },
  );
});

describe("socket kind: files no handshake can check are broken only by their pid's death", () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  async function lockDir(): Promise<string> {
    const dir = await tempDir();
    dirs.push(dir);
    return dir;
  }

  test("a live holder signing with another key (signatureSeed) keeps its lock against a contender using the directory's key", async () => {
    const dir = await lockDir();
    const name = `otherkey-${randomHex(4)}`;
    const file = lockPaths(dir, name, false).file;
    const held = await lock(name, { dir, signatureSeed: "another program's seed" });
    try {
      const before = await readFile(file, "utf8");
      // Its answer cannot be checked with our key: a "wrong" answer here does
      // not prove it dead, its live pid proves it alive. The contender is a
      // target of its own (as another process's would be), past this
      // process's in-process queue.
      const contender = socketTarget(
        { ...runtime },
        await resolveSocketSettings(runtime, name, { dir, handshakeTimeout: 200 }),
      );
      assert.equal(settle(await contender.tryAcquire()), null);
      assert.equal(await readFile(file, "utf8"), before, "the holder's file is untouched");
      assert.equal((await inspect(name, { dir }))?.pid, runtime.pid);
    } finally {
      await held.release();
    }
    const next = await tryLock(name, { dir });
    assert.ok(next, "free once released");
    assert.ok(next.token > held.token, `${next.token} > ${held.token}`);
    await next.release();
  });

  test("a lock file written on another host (a shared file system) is never broken here", async () => {
    const dir = await lockDir();
    const name = `otherhost-${randomHex(4)}`;
    const file = lockPaths(dir, name, false).file;
    // Its pid and port mean nothing on this host: that nothing answers on
    // 127.0.0.1 here, or that no such pid lives here, proves nothing.
    const text = formatLockFile({
      pid: 999_999,
      port: await freePort(),
      acquiredAt: Date.now(),
      host: `elsewhere-${randomHex(4)}.invalid`,
      name,
      id: randomHex(16),
      token: 1,
    }, false);
    await writeFile(file, text, { mode: 0o600 });
    assert.equal(await tryLock(name, { dir, handshakeTimeout: 200 }), null);
    assert.equal(await readFile(file, "utf8"), text, "the other host's file is untouched");
    const info = await inspect(name, { dir });
    assert.equal(info?.pid, 999_999, "shown as held, by the recorded holder");
  });
});
