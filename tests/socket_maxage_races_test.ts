// Three interleavings a review forced with the scripted runtime, each of
// which let two processes hold one socket lock before the fix:
// - a release that failed stopped answering, so contenders broke the file,
//   and the release's retry then retired the newcomer's file;
// - a token rewrite (`.last` ahead of the clock) stalled past a maxAge break
//   renamed itself over the next holder's file;
// - a file withdrawn after its rewrite's temp was swept was read and then
//   removed outside the breaker lock, losing a newcomer's file.
import assert from "node:assert/strict";
import { randomHex } from "../lib/socket/handshake.ts";
import { formatLockFile, type LockPaths, lockPaths } from "../lib/socket/lock_file.ts";
import { socketTarget } from "../lib/socket/socket_target.ts";
import { createWorld, type World } from "./_scripted_runtime.ts";
import {
  DIR,
  emfile,
  heldByFirst,
  holderPid,
  interleaving,
  pauseAt,
  settings,
  settle,
  within,
} from "./_socket_scenarios.ts";
import type { Grant } from "../lib/_kind.ts";

/** `.last` an hour ahead of the clock (a clock stepped back): every new holder rewrites its file. */
function lastAhead(world: World, paths: LockPaths, name: string): void {
  const token = (Date.now() + 3_600_000) * 1000;
  world.files.set(paths.last, {
    kind: "file",
    mode: 0o600,
    mtimeMs: 0,
    data: formatLockFile({
      pid: 1,
      port: 1,
      acquiredAt: 1,
      host: "scripted-host",
      name,
      id: randomHex(16),
      token,
    }, false),
  });
}

async function atMostOne(holders: (Grant | null)[], what: string): Promise<void> {
  const held = holders.filter((g) => g !== null);
  await Promise.all(held.map((g) => g.release()));
  assert.ok(held.length <= 1, `${held.length} holders at once (${what})`);
}

interleaving(
  "a release that failed keeps answering, so its retry never retires a newcomer's file",
  async () => {
    const name = `retry-${randomHex(4)}`;
    const { world, sims: [h, b, c], paths, grant } = await heldByFirst(name, [301, 302, 303]);
    // The first release cannot read its file (out of descriptors, say).
    h.hook = (op, path) => {
      if (op === "readFile" && path === paths.file) {
        throw emfile();
      }
    };
    await assert.rejects(grant.release(), /EMFILE/);
    // The retry, paused after its read, just before its rename to `.last`.
    const renaming = pauseAt(h, (op, path) => op === "rename" && path === paths.file);
    const retry = grant.release();
    await within(renaming.arrived, "the retry read its file and is about to rename it");
    const bGrant = settle(
      await within(socketTarget(b.runtime, settings(name)).tryAcquire(), "B's try"),
    );
    assert.equal(bGrant, null, "H still answers for its lock");
    renaming.go();
    await within(retry, "the retry returns");
    const cGrant = settle(await socketTarget(c.runtime, settings(name)).tryAcquire());
    assert.ok(cGrant, "free once released");
    assert.equal(holderPid(world, paths.file), 303);
    await atMostOne([bGrant, cGrant], "B and C");
  },
);

interleaving(
  "a token rewrite stalled past a maxAge break never replaces the next holder's file",
  async () => {
    const name = `rw-${randomHex(4)}`;
    const world = createWorld();
    const [a, b, c] = [401, 402, 403].map((pid) => world.process(pid));
    await a.runtime.mkdir(DIR, 0o700);
    const paths = lockPaths(DIR, name, false);
    lastAhead(world, paths, name);
    // A links its file, then stalls before writing its rewrite's temp.
    const stalled = pauseAt(
      a,
      (op, path) => op === "writeFileExclusive" && path.endsWith(".re.tmp"),
    );
    const aTry = socketTarget(a.runtime, settings(name)).tryAcquire();
    await within(stalled.arrived, "A linked its file and is about to rewrite it");
    // The stall outlasts B's maxAge (B's clock 10 s ahead).
    b.runtime.now = () => Date.now() + 10_000;
    const bGrant = settle(
      await within(socketTarget(b.runtime, settings(name, { maxAge: 1_000 })).tryAcquire(), "B"),
    );
    stalled.go();
    const aGrant = settle(await within(aTry, "A's try"));
    // A may have been broken by maxAge (its own overlap is the documented
    // cost); its release must not free the lock under anyone else.
    await aGrant?.release();
    const cGrant = settle(await socketTarget(c.runtime, settings(name)).tryAcquire());
    await atMostOne([bGrant, cGrant], "B and C, neither broken by maxAge");
  },
);

interleaving(
  "a file withdrawn after its rewrite's temp was swept is removed only while still ours",
  async () => {
    const name = `wd-${randomHex(4)}`;
    const world = createWorld();
    const [a, sweeper, b, c] = [501, 502, 503, 504].map((pid) => world.process(pid));
    await a.runtime.mkdir(DIR, 0o700);
    const paths = lockPaths(DIR, name, false);
    lastAhead(world, paths, name);
    // A links, writes its `.re.tmp` and stalls before the rename.
    const beforeRename = pauseAt(a, (op, path) => op === "rename" && path.endsWith(".re.tmp"));
    const aTry = socketTarget(a.runtime, settings(name)).tryAcquire();
    await within(beforeRename.arrived, "A is about to rename its rewrite temp");
    // The stall outlasts 5 s: another process's first try sweeps A's temp.
    sweeper.runtime.now = () => Date.now() + 10_000;
    const swept = settle(await socketTarget(sweeper.runtime, settings(name)).tryAcquire());
    // A goes on: its rename fails, and it withdraws its file; paused before the removal.
    const beforeRemove = pauseAt(a, (op, path) => op === "remove" && path === paths.file);
    beforeRename.go();
    await within(beforeRemove.arrived, "A read its file and is about to remove it");
    // Meanwhile a maxAge breaker judges A's file stale.
    b.runtime.now = () => Date.now() + 10_000;
    const bGrant = settle(
      await within(socketTarget(b.runtime, settings(name, { maxAge: 1_000 })).tryAcquire(), "B"),
    );
    beforeRemove.go();
    const aGrant = settle(await within(aTry, "A's try"));
    const cGrant = settle(await socketTarget(c.runtime, settings(name)).tryAcquire());
    // A's grant, if any, comes from a fresh file in its next round.
    await atMostOne([swept, bGrant, cGrant, aGrant], "none broken by maxAge");
  },
);

interleaving(
  "a release that failed and is never retried stops answering after a second, so the lock is not stuck; a late retry leaves the newcomer's file alone",
  async () => {
    const name = `stuck-${randomHex(4)}`;
    const { world, sims: [h, b, c], paths, grant } = await heldByFirst(name, [601, 602, 603]);
    let failing = true;
    h.hook = (op, path) => {
      if (failing && op === "readFile" && path === paths.file) {
        throw emfile();
      }
    };
    await assert.rejects(grant.release(), /EMFILE/);
    failing = false;
    assert.equal(settle(await socketTarget(b.runtime, settings(name)).tryAcquire()), null);
    // No retry comes (withLock and `await using` make none): after the
    // retry window the holder stops answering, and B breaks its file.
    await new Promise((resolve) => setTimeout(resolve, 1_300));
    const bGrant = settle(
      await within(socketTarget(b.runtime, settings(name)).tryAcquire(), "B's try"),
    );
    assert.ok(bGrant, "B took the lock of the holder that stopped answering");
    // A retry that comes anyway must not retire B's file.
    await grant.release();
    assert.equal(holderPid(world, paths.file), 602, "B's file is in place");
    const cGrant = settle(await socketTarget(c.runtime, settings(name)).tryAcquire());
    await atMostOne([bGrant, cGrant], "B and C");
  },
);
