// What check-bid-check must never judge stale, and a token that must never
// go down, in a scripted world: bids it cannot check stay, however they look.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createWorld, type World } from "./_scripted_runtime.ts";
import type { Runtime } from "../lib/runtime/mod.ts";
import { folderTarget } from "../lib/folder/folder_target.ts";

const FOLDER = "/locks/x.folder";

function setup(pid: number): { world: World; runtime: Runtime } {
  const world = createWorld();
  world.files.set("/locks", { kind: "dir", data: "", mode: 0o700, mtimeMs: 0 });
  world.files.set(FOLDER, { kind: "dir", data: "", mode: 0o700, mtimeMs: 0 });
  return { world, runtime: world.process(pid).runtime };
}

describe("folder kind: bids that cannot be checked here stay live", () => {
  test("a bid from another pid namespace sharing our network, without a beacon, is live: its pid means nothing here", async () => {
    const { world, runtime } = setup(451);
    const path = `${FOLDER}/sidecar.json`;
    // The scripted runtime lives in namespaces "1:1": this bid shares the
    // network namespace (a host-network container) but not the pids, and
    // has no beacon to ask. Nothing here can prove its writer gone.
    world.files.set(path, {
      kind: "file",
      data: JSON.stringify({ PID: 999_999, CREATED: 1, host: "scripted-host", ns: "7:1" }),
      mode: 0o600,
      mtimeMs: runtime.now(),
    });
    const result = await folderTarget(runtime, "x", FOLDER).tryAcquire();
    assert.equal(result.acquired, false, "the container's holder still holds");
    assert.ok(world.files.has(path), "its bid is not deleted");
  });

  test("where no start times can be read (macOS, Windows), a live pid's bid is live and a dead pid's is stale", async () => {
    const { world, runtime: linux } = setup(461);
    // Our runtimes read start times from /proc only: elsewhere, every
    // startTime() is null, and a live pid is all there is to go by.
    const runtime: Runtime = { ...linux, startTime: () => Promise.resolve(null) };
    world.alive.set(462, 1_000);
    const path = `${FOLDER}/holder.json`;
    const put = (pid: number) =>
      world.files.set(path, {
        kind: "file",
        data: JSON.stringify({ PID: pid, CREATED: 1_000, host: "scripted-host" }),
        mode: 0o600,
        mtimeMs: runtime.now(),
      });
    put(462);
    const live = await folderTarget(runtime, "x", FOLDER).tryAcquire();
    assert.equal(live.acquired, false, "pid 462 runs: its bid holds");
    assert.ok(world.files.has(path), "and is not deleted");
    world.kill(462);
    const gone = await folderTarget(runtime, "x", FOLDER).tryAcquire();
    assert.equal(gone.acquired, true, "pid 462 is gone: its bid is stale");
    assert.equal(world.files.has(path), false);
  });
});
