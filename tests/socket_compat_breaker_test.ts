// Compat mode across users: root and a user in the shared temp dir, or two
// users of a shared group-writable dir, can all remove the same compat lock
// file, so their breakers must be shut out from each other. A breaker paused
// after its byte-identical re-read must find every other user's breaker
// locked out, never a newcomer's file removed under it (forced with the
// scripted runtime; the breaker locks are real abstract sockets or ports).
import { describe } from "node:test";
import assert from "node:assert/strict";
import type { Grant } from "../lib/_kind.ts";
import { holdPortKey } from "../lib/port/port_target.ts";
import { breakerKey } from "../lib/socket/break_stale_lock.ts";
import { randomHex } from "../lib/socket/handshake.ts";
import { lockPaths, parseLockFile } from "../lib/socket/lock_file.ts";
import { socketTarget } from "../lib/socket/socket_target.ts";
import { createWorld, type SimulatedProcess } from "./_scripted_runtime.ts";
import { DIR, interleaving, pauseAt, settings, settle, within } from "./_socket_scenarios.ts";
import { freePort } from "./_processes.ts";

function asUser(sim: SimulatedProcess, uid: number): SimulatedProcess {
  sim.runtime = { ...sim.runtime, uid: () => uid };
  return sim;
}

/** A world with a dead Python holder's compat file (no token) for `name`. */
async function staleCompatWorld(name: string) {
  const world = createWorld();
  await world.process(1).runtime.mkdir(DIR, 0o700);
  const file = lockPaths(DIR, name, true).file;
  const stale = JSON.stringify(
    { port: await freePort(), pid: 999_999, timestamp: Date.now() / 1000, name },
    null,
    2,
  );
  world.files.set(file, { kind: "file", data: stale, mode: 0o600, mtimeMs: 0 });
  return { world, file, stale };
}

describe("socket kind, compat mode: one breaker lock for every user of a lock file", () => {
  for (const otherUid of [0, 2000]) {
    interleaving(
      `a breaker of uid ${otherUid} paused before its removal shuts out uid 1000's breaker: one holder, never two`,
      async () => {
        const grants: Grant[] = [];
        try {
          const name = `xu-${randomHex(4)}`;
          const { world, file, stale } = await staleCompatWorld(name);
          const user = asUser(world.process(101), 1000);
          const other = asUser(world.process(102), otherUid);
          const compat = settings(name, { compat: true });

          // The other user's breaker re-read the stale file under its breaker
          // lock and pauses right at the removal.
          const otherPause = pauseAt(other, (op, path) => op === "remove" && path === file);
          const otherTry = socketTarget(other.runtime, compat).tryAcquire();
          await within(otherPause.arrived, "the other user's breaker is about to remove");
          assert.equal(world.files.get(file)?.data, stale, "it re-read the stale file");

          // The user judges the same file stale: its break must be shut out.
          const userGrant = settle(
            await within(socketTarget(user.runtime, compat).tryAcquire(), "the user's try"),
          );
          if (userGrant) grants.push(userGrant);
          assert.equal(userGrant, null, "the user's breaker was not shut out");
          assert.equal(world.files.get(file)?.data, stale, "nothing was removed meanwhile");

          otherPause.go();
          const otherGrant = settle(await within(otherTry, "the other user's try"));
          if (otherGrant) grants.push(otherGrant);
          assert.ok(otherGrant, "the paused breaker goes on and takes the lock");
          assert.equal(parseLockFile(world.files.get(file)!.data)?.pid, 102);
        } finally {
          for (const grant of grants) await grant.release().catch(() => {});
        }
      },
    );
  }

  interleaving(
    "the compat breaker key is the lock file's: the same for every user, another for another directory",
    async () => {
      const world = createWorld();
      const root = asUser(world.process(1), 0).runtime;
      const user = asUser(world.process(2), 1000).runtime;
      const name = `key-${randomHex(4)}`;
      assert.equal(
        await breakerKey(root, name, null, DIR),
        await breakerKey(user, name, null, DIR),
      );
      assert.notEqual(
        await breakerKey(user, name, null, DIR),
        await breakerKey(user, name, null, `${DIR}/other`),
      );
    },
  );

  interleaving(
    "a squatter on the compat breaker key stalls breaks of that file and removes nothing (a denial of service, not a second holder)",
    async () => {
      const name = `sq-${randomHex(4)}`;
      const { world, file, stale } = await staleCompatWorld(name);
      const user = asUser(world.process(101), 1000);
      const squatter = await holdPortKey(
        user.runtime,
        await breakerKey(user.runtime, name, null, DIR),
      );
      assert.ok(squatter, "bound the compat breaker key, as any local user can");
      try {
        const attempt = await socketTarget(user.runtime, settings(name, { compat: true }))
          .tryAcquire();
        assert.equal(settle(attempt), null);
        assert.equal(world.files.get(file)?.data, stale, "the stale file is left in place");
      } finally {
        await squatter();
      }
      const grant = settle(
        await socketTarget(user.runtime, settings(name, { compat: true })).tryAcquire(),
      );
      assert.ok(grant, "broken once the squatter let go");
      await grant.release();
    },
  );
});
