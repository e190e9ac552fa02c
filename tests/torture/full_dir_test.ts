// A full lock directory, simulated by the scripted runtime: while contenders
// of the folder and socket kinds race (with random pauses between file
// operations, crashes, and stale files of dead holders), the disk fills and
// frees at random. A failed write leaves an empty file behind, as a real
// open(O_CREAT) + failed write() does. However the writes fail: never two
// holders, a live holder's lock file or bid is never removed or changed, a
// failed try says ENOSPC, and once space is back the lock is usable again.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { errorCode } from "../../lib/runtime/mod.ts";
import type { Attempt, Grant, LockTarget } from "../../lib/_kind.ts";
import { folderTarget } from "../../lib/folder/folder_target.ts";
import { GARBAGE_GRACE_MS } from "../../lib/folder/challenge_bid.ts";
import { formatLockFile, lockPaths } from "../../lib/socket/lock_file.ts";
import { socketTarget } from "../../lib/socket/socket_target.ts";
import { freePort } from "../_processes.ts";
import { createWorld, type SimulatedProcess, type World } from "../_scripted_runtime.ts";

const DIR = "/locks";

function prng(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

interface Scenario {
  /** A target for one simulated process. */
  target(sim: SimulatedProcess): LockTarget;
  /** What of `holder`'s lock must stay untouched while it holds: path → content. */
  evidence(world: World, holder: number): Map<string, string>;
  /** Plants a dead holder's lock; the caller checks, synchronously, that nobody holds it. */
  plantStale(world: World): void;
  /** Prepares what plantStale needs (a port nobody listens on). */
  prepareStale(): Promise<void>;
}

function folderScenario(): Scenario {
  const folder = `${DIR}/x.folder`;
  return {
    target: (sim) => folderTarget(sim.runtime, "x", folder),
    evidence(world, holder) {
      const mine = [...world.files].filter(([path, entry]) =>
        path.startsWith(`${folder}/`) && entry.data.includes(`"PID":${holder},`)
      );
      return new Map(mine.map(([path, entry]) => [path, entry.data]));
    },
    prepareStale: () => Promise.resolve(),
    plantStale(world) {
      world.files.set(`${folder}/${crypto.randomUUID()}.json`, {
        kind: "file",
        data: JSON.stringify({ PID: 999_999, CREATED: 1 }),
        mode: 0o600,
        mtimeMs: 0,
      });
    },
  };
}

function socketScenario(): Scenario {
  const file = lockPaths(DIR, "x", false).file;
  let port = 0;
  return {
    target: (sim) =>
      socketTarget(sim.runtime, { name: "x", dir: DIR, compat: false, handshakeTimeout: 1_000 }),
    evidence(world) {
      const entry = world.files.get(file);
      return new Map(entry ? [[file, entry.data]] : []);
    },
    async prepareStale() {
      port = await freePort(); // nobody listens there
    },
    plantStale(world) {
      if (world.files.has(file)) return;
      const data = formatLockFile({
        pid: 999_999,
        port,
        acquiredAt: Date.now(),
        host: "scripted-host",
        name: "x",
        id: crypto.randomUUID().replaceAll("-", ""),
        token: 1,
      }, false);
      world.files.set(file, { kind: "file", data, mode: 0o600, mtimeMs: 0 });
    },
  };
}

async function torture(scenario: Scenario, seed: number) {
  const random = prng(seed);
  const world = createWorld();
  world.partialWrites = true;
  await world.process(1).runtime.mkdir(DIR, 0o700);
  await world.process(1).runtime.mkdir(`${DIR}/x.folder`, 0o700);
  let nextPid = 11;
  // A crashed process is gone for good; its successor is a new process.
  const spawn = () => {
    const sim = world.process(nextPid++);
    sim.hook = async () => {
      if (random() < 0.08) world.diskFull = !world.diskFull;
      for (let i = Math.floor(random() * 4); i > 0; i--) await Promise.resolve();
    };
    return sim;
  };
  let holder: { pid: number; grant: Grant; evidence: Map<string, string> } | null = null;
  const figures = { grants: 0, enospc: 0, crashes: 0, stale: 0 };
  let staleDue = false;
  const checkHolderUntouched = () => {
    if (!holder || !world.alive.has(holder.pid)) return;
    for (const [path, data] of holder.evidence) {
      assert.equal(
        world.files.get(path)?.data,
        data,
        `live holder ${holder.pid}'s ${path} was touched`,
      );
    }
  };

  async function contender() {
    let sim = spawn();
    let target = scenario.target(sim);
    for (let round = 0; round < 400 && figures.grants < 60; round++) {
      if (!world.alive.has(sim.runtime.pid)) {
        sim = spawn();
        target = scenario.target(sim);
      }
      // A plant due while someone holds waits for a free moment, so every
      // seed plants some whatever the timing of the other contenders.
      if (staleDue && !holder) {
        await scenario.prepareStale();
        if (!holder) {
          staleDue = false;
          figures.stale++;
          scenario.plantStale(world);
        }
      }
      const pid = sim.runtime.pid;
      let attempt: Attempt;
      try {
        attempt = await target.tryAcquire();
      } catch (error) {
        assert.equal(errorCode(error), "ENOSPC", `unexpected failure: ${error}`);
        figures.enospc++;
        checkHolderUntouched();
        await new Promise((resolve) => setTimeout(resolve, random() * 2));
        continue;
      }
      checkHolderUntouched();
      if (!attempt.acquired) {
        attempt.cancelWake?.();
        await new Promise((resolve) => setTimeout(resolve, random() * 2));
        continue;
      }
      if (holder && world.alive.has(holder.pid)) {
        assert.fail(`${pid} got the lock while ${holder.pid} holds it`);
      }
      holder = { pid, grant: attempt.grant, evidence: scenario.evidence(world, pid) };
      assert.ok(holder.evidence.size > 0, "the holder's lock is on disk");
      figures.grants++;
      await new Promise((resolve) => setTimeout(resolve, random() * 2));
      checkHolderUntouched();
      const mine = holder;
      holder = null;
      // Random crashes, and every tenth grant, so each seed has a few whatever the timing.
      if (random() < 0.15 || figures.grants % 10 === 5) {
        // Dies holding: its files stay; the socket kind's listener closes as the OS would.
        figures.crashes++;
        world.kill(pid);
        if (scenario === scenarioUnderTest.socket) {
          // The OS closes a dead holder's listener but leaves its file:
          // release (closing the listener), then put the file back.
          await mine.grant.release().catch(() => {});
          for (const [path, data] of mine.evidence) {
            world.files.set(path, { kind: "file", data, mode: 0o600, mtimeMs: Date.now() });
          }
        }
        continue;
      }
      await mine.grant.release().catch((error) => {
        assert.equal(errorCode(error), "ENOSPC", `release failed: ${error}`);
      });
      if (random() < 0.1 || figures.grants % 10 === 0) staleDue = true;
    }
  }
  await Promise.all([1, 2, 3, 4].map(contender));
  assert.ok(figures.grants >= 60, `grants: ${JSON.stringify(figures)}`);
  assert.ok(figures.enospc > 10, `the disk never filled: ${JSON.stringify(figures)}`);
  assert.ok(figures.crashes > 3 && figures.stale > 0, `too few faults: ${JSON.stringify(figures)}`);

  // Space is back and garbage has aged: the lock must be usable again.
  world.diskFull = false;
  for (const entry of world.files.values()) entry.mtimeMs -= GARBAGE_GRACE_MS * 2;
  for (const pid of [...world.alive.keys()]) world.kill(pid);
  const fresh = world.process(nextPid++);
  const last = await scenario.target(fresh).tryAcquire();
  assert.ok(last.acquired, "the lock is free once the disk has room and holders are gone");
  await last.grant.release();
  return { figures, files: [...world.files.keys()] };
}

const scenarioUnderTest = { folder: folderScenario(), socket: socketScenario() };

describe("a full lock directory never lets two holders in", () => {
  for (const seed of [1, 2, 3]) {
    test(`folder kind, seed ${seed}`, async () => {
      const { files } = await torture(scenarioUnderTest.folder, seed);
      // The fencing counter stays by design.
      const left = files.filter((f) => f.startsWith(`${DIR}/x.folder/`) && !f.endsWith("/token"));
      assert.deepEqual(left, [], "no bid, temp file or garbage is left behind");
    });
    test(`socket kind, seed ${seed}`, async () => {
      const { files } = await torture(scenarioUnderTest.socket, seed);
      const left = files.filter((f) => f.startsWith(`${DIR}/`) && !f.startsWith(`${DIR}/x.folder`));
      // The key and the last holder's retired file (the token floor) stay by design.
      const debris = left.filter((f) => !f.includes("socketlock.key") && !f.endsWith(".lock.last"));
      assert.deepEqual(debris, [], "no temp file or garbage is left behind");
    });
  }
});
