// A release racing a maxAge break, forced with the scripted runtime: no two
// holders of one name ever exist at once. Then bad input in a real
// directory: a name at the length limit, a huge garbage lock file.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import { tryLock } from "../mod.ts";
import { randomHex } from "../lib/socket/handshake.ts";
import { lockPaths } from "../lib/socket/lock_file.ts";
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
import { tempDir } from "./_processes.ts";

describe("socket kind: maxAge breaks racing a release", () => {
  interleaving(
    "a maxAge breaker stalled under the breaker lock past the release's wait: the release leaves the file, so no newcomer's file is removed",
    async () => {
      const name = `stall-${randomHex(4)}`;
      const world = createWorld();
      const [old, breaker, newcomer, late] = [101, 102, 103, 104].map((pid) => world.process(pid));
      await old.runtime.mkdir(DIR, 0o700);
      const paths = lockPaths(DIR, name, false);
      const oldGrant = settle(await socketTarget(old.runtime, settings(name)).tryAcquire())!;
      // Held long enough that its release takes the breaker lock.
      await new Promise((resolve) => setTimeout(resolve, 550));

      // The breaker judged the old lock too old, re-read it under the breaker
      // lock (identical), and stalls (a stopped or starved process) before
      // reading `.last` and removing the file.
      const stalled = pauseAt(breaker, (op, path) => op === "readFile" && path === paths.last);
      const breaking = socketTarget(breaker.runtime, settings(name, { maxAge: 5 })).tryAcquire();
      await within(stalled.arrived, "the breaker holds the breaker lock, file re-read");

      // The old holder releases while the breaker lock stays taken.
      await within(oldGrant.release(), "the old holder's release returns");
      const newGrant = settle(await socketTarget(newcomer.runtime, settings(name)).tryAcquire());

      stalled.go();
      const brokeGrant = settle(await within(breaking, "the breaker's try ends"));
      const holders = [newGrant, brokeGrant].filter((g) => g !== null);
      assert.ok(holders.length <= 1, `${holders.length} holders at once`);
      if (holders.length === 1) {
        assert.equal(holderPid(world, paths.file), holders[0]!.info.pid, "the holder's file");
      }
      const lateGrant = settle(await socketTarget(late.runtime, settings(name)).tryAcquire());
      assert.equal(
        holders.length + (lateGrant ? 1 : 0),
        1,
        "exactly one holder in the end",
      );
      const final = (holders[0] ?? lateGrant)!;
      assert.ok(final.token > oldGrant.token, `token ${final.token} > ${oldGrant.token}`);
      await final.release();
    },
  );
});

describe("socket kind: a release after the wall clock stepped forward", () => {
  interleaving(
    "a short hold released after a forward clock step takes the breaker lock: a maxAge break cannot slip between its read and its rename",
    async () => {
      const name = `step-${randomHex(4)}`;
      const world = createWorld();
      const sims = [111, 112, 113, 114].map((pid) => world.process(pid));
      const [holder, breaker, newcomer, late] = sims;
      await holder.runtime.mkdir(DIR, 0o700);
      const paths = lockPaths(DIR, name, false);
      const grant = settle(await socketTarget(holder.runtime, settings(name)).tryAcquire())!;
      // The host's clock steps 10 s forward (NTP at boot, a VM resumed): by
      // the wall clock the lock is 10 s old, by the monotonic one a moment.
      for (const sim of sims) sim.runtime.now = () => Date.now() + 10_000;

      // The holder releases; it is paused once it has read its file and is
      // about to rename it to `.last`.
      const renaming = pauseAt(holder, (op, path) => op === "rename" && path === paths.file);
      const releasing = grant.release();
      await within(renaming.arrived, "the holder read its file and is about to rename it");

      // Meanwhile a maxAge breaker judges the lock too old, and a newcomer
      // tries; then the release goes on, and a latecomer tries.
      const broke = settle(
        await within(
          socketTarget(breaker.runtime, settings(name, { maxAge: 1_000 })).tryAcquire(),
          "the breaker's try ends",
        ),
      );
      const came = settle(await socketTarget(newcomer.runtime, settings(name)).tryAcquire());
      renaming.go();
      await within(releasing, "the release returns");
      const later = settle(await socketTarget(late.runtime, settings(name)).tryAcquire());
      const holders = [broke, came, later].filter((g) => g !== null);
      assert.equal(holders.length, 1, `${holders.length} holders at once`);
      assert.equal(holderPid(world, paths.file), holders[0]!.info.pid, "the holder's file");
      assert.ok(holders[0]!.token > grant.token);
      await holders[0]!.release();
    },
  );
});

describe("socket kind: bad input in a real directory", () => {
  test("a name of 200 UTF-8 bytes locks, excludes, breaks a stale file and chains tokens", async () => {
    const dir = await tempDir();
    try {
      const name = "é".repeat(100); // 200 bytes: the longest name
      const first = await tryLock(name, { dir });
      assert.ok(first);
      assert.equal(await tryLock(name, { dir }), null);
      await first.release();
      // A garbage file left where the lock belongs is broken and the lock taken.
      await writeFile(lockPaths(dir, name, false).file, "{garbage", { mode: 0o600 });
      const second = await tryLock(name, { dir });
      assert.ok(second);
      assert.ok(second.token > first.token, `${second.token} > ${first.token}`);
      await second.release();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a huge garbage lock file is broken, not parsed as a holder", async () => {
    const dir = await tempDir();
    try {
      const file = lockPaths(dir, "huge", false).file;
      await writeFile(file, `{"pid":1,"port":1,"x":"${"x".repeat(4 << 20)}`, { mode: 0o600 });
      const held = await tryLock("huge", { dir });
      assert.ok(held);
      assert.equal(await tryLock("huge", { dir }), null);
      await held.release();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
