// Every socket-kind release works under the breaker lock, and without it
// touches nothing: a stall between a release's re-read and its rename (a
// stopped process, a VM pause) must not let a maxAge breaker and a newcomer
// slip in between, and a breaker key that cannot be read (out of file
// descriptors) must not send a retry on unguarded. Clocks 10 s ahead stand
// in for the stall, as in socket_maxage_races_test.ts.

import assert from "node:assert/strict";
import { randomHex } from "../lib/socket/handshake.ts";
import { socketTarget } from "../lib/socket/socket_target.ts";
import {
  emfile,
  heldByFirst,
  holderPid,
  interleaving,
  pauseAt,
  settings,
  settle,
  within,
} from "./_socket_scenarios.ts";

interleaving(
  "a short hold's release stalled before its rename keeps maxAge breakers out",
  async () => {
    const name = `relstall-${randomHex(4)}`;
    const { world, sims, paths, grant } = await heldByFirst(name, [701, 702, 703]);
    const [h, b, c] = sims;
    // A hold of a moment, paused after the re-read, just before the rename.
    const renaming = pauseAt(h, (op, path) => op === "rename" && path === paths.file);
    const releasing = grant.release();
    await within(renaming.arrived, "H re-read its file and is about to rename it");
    // The stall lasts 10 s: the file is now old enough for B's maxAge.
    for (const sim of sims) sim.runtime.now = () => Date.now() + 10_000;
    const bGrant = settle(
      await within(socketTarget(b.runtime, settings(name, { maxAge: 1_000 })).tryAcquire(), "B"),
    );
    assert.equal(bGrant, null, "B broke a file whose release held the breaker lock");
    renaming.go();
    await within(releasing, "H's release");
    assert.equal(holderPid(world, paths.file), undefined);
    const cGrant = settle(await socketTarget(c.runtime, settings(name)).tryAcquire());
    assert.ok(cGrant, "the released lock is free");
    await cGrant.release();
  },
);

interleaving("a retried release that cannot read the breaker key touches nothing", async () => {
  const name = `keyless-${randomHex(4)}`;
  const { world, sims: [h, b, c], paths, grant } = await heldByFirst(name, [801, 802, 803]);
  // The first release fails (out of descriptors at the re-read)...
  h.hook = (op, path) => {
    if (op === "readFile" && path === paths.file) throw emfile();
  };
  await assert.rejects(grant.release(), /EMFILE/);
  // ...and the retry cannot confirm the key: it must fail, not go on unguarded.
  let renamed = false;
  h.hook = (op, path) => {
    if (path.endsWith("/socketlock.key")) throw emfile();
    if (op === "rename" && path === paths.file) renamed = true;
  };
  await assert.rejects(grant.release(), /EMFILE/);
  assert.equal(renamed, false, "the retry renamed the lock file without the breaker lock");
  assert.equal(holderPid(world, paths.file), 801, "H's file stays until a breaker takes it");
  // Once H stops answering (1 s after its first failure), B breaks it; C
  // then finds B's lock, whatever H's later retries do.
  await new Promise((resolve) => setTimeout(resolve, 1_200));
  const bGrant = settle(await within(socketTarget(b.runtime, settings(name)).tryAcquire(), "B"));
  assert.ok(bGrant, "B breaks the file of a holder that stopped answering");
  await assert.rejects(grant.release(), /EMFILE/);
  assert.equal(holderPid(world, paths.file), 802);
  const cGrant = settle(await socketTarget(c.runtime, settings(name)).tryAcquire());
  assert.equal(cGrant, null, "C acquired while B holds");
  await bGrant.release();
});
