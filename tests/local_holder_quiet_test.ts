// Naming this process's own holder (a tryLock, an inspect(), a timed-out
// in-process wait) must not start the holder's held-lock check: for the
// folder and socket kinds reading `grant.lost` starts probing the lock file
// or bid every second until release, and the Grant contract keeps that for
// holders that read held.signal. localHolder() asks lostAlready() instead.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { inspect, lock, LockTimeoutError, tryLock } from "../mod.ts";
import { runtime } from "../lib/runtime/mod.ts";
import { tempDir } from "./_processes.ts";
import { sleep } from "./_server_helpers.ts";

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

for (const kind of ["folder", "socket"] as const) {
  test(`${kind}: a tryLock/inspect/timed-out wait by others does not start the holder's probing`, async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const name = `probe-${crypto.randomUUID().slice(0, 8)}`;
    const held = await lock(name, { kind, dir });
    // Count the probes of the holder's own bid / lock file from now on.
    const probes: string[] = [];
    const lstat = runtime.lstat;
    const readFile = runtime.readFile;
    runtime.lstat = (path: string) => {
      if (path.startsWith(dir)) probes.push(`lstat ${path}`);
      return lstat.call(runtime, path);
    };
    // deno-lint-ignore no-explicit-any
    (runtime as any).readFile = (path: string, ...rest: any[]) => {
      if (path.startsWith(dir)) probes.push(`readFile ${path}`);
      // deno-lint-ignore no-explicit-any
      return (readFile as any).call(runtime, path, ...rest);
    };
    try {
      assert.equal(await tryLock(name, { kind, dir }), null);
      assert.ok(await inspect(name, { kind, dir }));
      await assert.rejects(lock(name, { kind, dir, timeout: 10 }), LockTimeoutError);
      probes.length = 0; // whatever the calls above read themselves
      await sleep(2_300);
    } finally {
      runtime.lstat = lstat;
      // deno-lint-ignore no-explicit-any
      (runtime as any).readFile = readFile;
      await held.release();
    }
    assert.deepEqual(probes, [], "the holder, which never read held.signal, probes its lock");
  });
}
