// A lockfolder peer (bids written in place) stalled between creating its bid
// and writing it, for longer than the garbage grace: its empty bid must not
// be cleared as garbage while it is open, or the peer writes into an
// unlinked file and holds unseen, beside the next holder.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { lstat, readdir, rm } from "node:fs/promises";
import { FolderLock } from "../mod.ts";
import { GARBAGE_GRACE_MS } from "../lib/folder/challenge_bid.ts";
import { type Child, fixture, inOneRunner, spawnCommand, tempDir } from "./_processes.ts";
import { eventually } from "./_waiting.ts";

// 7 s of a stalled peer: in one runner of three (each runtime's fileInUse()
// has its own test in runtime_test.ts); SOCKETLOCK_ALL_RUNTIMES=1: all.
if (inOneRunner(1)) {
  describe("folder kind: a stalled in-place writer", () => {
    const dirs: string[] = [];
    const kids: Child[] = [];
    after(async () => {
      for (const kid of kids) kid.process.kill("SIGKILL");
      for (const dir of dirs) await rm(dir, { recursive: true, force: true });
    });

    test(
      "a Python peer stalled mid-write of its bid for longer than the garbage grace never ends up holding alongside us",
      async () => {
        const dir = await tempDir();
        dirs.push(dir);
        const folder = `${dir}/shared.folder`;
        const stall = (GARBAGE_GRACE_MS + 2_000) / 1000;
        const peer = spawnCommand("python3", [
          fixture("stalled_lockfolder_peer.py"),
          folder,
          String(stall),
          "10",
        ]);
        kids.push(peer);
        await peer.waitFor("opened", 10_000);
        // Its bid is still empty, and now older than the grace: a waiter's or an
        // inspector's challenge clears it as garbage.
        const lock = new FolderLock(folder);
        assert.ok(
          await eventually(async () => {
            const bids = (await readdir(folder)).filter((n) => n.endsWith(".json"));
            if (bids.length !== 1) return false;
            const age = Date.now() - (await lstat(`${folder}/${bids[0]}`)).mtimeMs;
            return age > GARBAGE_GRACE_MS + 200;
          }, GARBAGE_GRACE_MS + 3_000),
          "the peer's empty bid ages past the grace",
        );
        assert.equal(await lock.getLockInfo(), null);
        // The peer wakes, writes its bid (into the unlinked file) and, seeing no
        // other bid, holds.
        await peer.waitFor("holds", 10_000);
        const acquired = await lock.tryAcquire();
        if (acquired) await lock.release();
        assert.equal(acquired, false, "two holders: the Python peer and us");
      },
    );
  });
}
