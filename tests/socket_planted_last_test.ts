// Compat mode's per-user `.<name>.lock.last.<uid>` in the shared temp dir has
// a name anyone can predict: another user can plant one with a huge token
// before we ever write it, and, being theirs (the sticky bit), we can neither
// replace nor remove it. Such a `.last` is not trusted; and whatever `.last`
// says, one process never hands out the same or a lower token twice (EPERM is
// forced with the scripted runtime: as root nothing is refused).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { FileStat } from "../lib/runtime/mod.ts";
import { randomHex } from "../lib/socket/handshake.ts";
import { type LockPaths, lockPaths } from "../lib/socket/lock_file.ts";
import { socketTarget } from "../lib/socket/socket_target.ts";
import { createWorld, type SimulatedProcess, type World } from "./_scripted_runtime.ts";
import { DIR, settings, settle } from "./_socket_scenarios.ts";

// Far ahead of the clock (the year 2100), still a safe integer.
const PLANTED = 4_102_444_800_000_000;

/** A world where `.last` of compat lock `name` holds `token` and cannot be removed or replaced. */
async function plantedWorld(name: string, token = PLANTED): Promise<{
  world: World;
  sims: SimulatedProcess[];
  paths: LockPaths;
}> {
  const world = createWorld();
  const sims = [world.process(201), world.process(202)];
  await sims[0].runtime.mkdir(DIR, 0o700);
  const paths = lockPaths(DIR, name, true, 1000);
  world.files.set(paths.last, {
    kind: "file",
    data: JSON.stringify({ port: 1, pid: 1, timestamp: 0, name, token }),
    mode: 0o644,
    mtimeMs: 0,
  });
  for (const sim of sims) {
    sim.hook = (op, path) => {
      if ((op === "remove" || op === "rename") && path === paths.last) {
        throw Object.assign(new Error(`EPERM: ${path}`), { code: "EPERM" });
      }
    };
  }
  return { world, sims, paths };
}

/** `sim` seeing `path` as owned by `uid`. */
function ownedBy(sim: SimulatedProcess, path: string, uid: number): void {
  const lstat = sim.runtime.lstat;
  sim.runtime = {
    ...sim.runtime,
    lstat: async (p): Promise<FileStat> => {
      const stat = await lstat(p);
      return p === path ? { ...stat, uid } : stat;
    },
  };
}

async function acquireInTurn(name: string, order: SimulatedProcess[]): Promise<number[]> {
  const tokens: number[] = [];
  for (const sim of order) {
    const grant = settle(
      await socketTarget(sim.runtime, settings(name, { compat: true })).tryAcquire(),
    );
    assert.ok(grant, "acquired");
    tokens.push(grant.token);
    await grant.release();
  }
  return tokens;
}

function assertGrowing(tokens: number[]): void {
  for (let i = 1; i < tokens.length; i++) {
    assert.ok(tokens[i] > tokens[i - 1], `token did not grow: ${tokens.join(", ")}`);
  }
}

describe("socket kind, compat mode: a planted per-user .last", () => {
  test("another user's .last at our per-user name is ignored: tokens follow the clock and grow", async () => {
    const name = `pl-${randomHex(4)}`;
    const { world, sims: [a, b], paths } = await plantedWorld(name);
    ownedBy(a, paths.last, 2000);
    ownedBy(b, paths.last, 2000);
    const tokens = await acquireInTurn(name, [a, b, a, b]);
    assertGrowing(tokens);
    assert.ok(tokens.every((t) => t < PLANTED), `pinned to the planted token: ${tokens}`);
    assert.ok(world.files.has(paths.last), "theirs stays (we may not remove it)");
  });

  test("a .last that cannot be replaced never makes one process issue a token twice", async () => {
    // Ours (say made immutable), so trusted: every acquisition reads the same
    // token there, but the tokens it hands out still grow. (An hour ahead,
    // not PLANTED: this process's tokens stay above it from now on.)
    const name = `pl-${randomHex(4)}`;
    const ahead = (Date.now() + 3_600_000) * 1000;
    const { sims: [a, b] } = await plantedWorld(name, ahead);
    const tokens = await acquireInTurn(name, [a, a, b, a, b]);
    assertGrowing(tokens);
    assert.ok(tokens.every((t) => t > ahead), "above the .last read");
  });

  test("a symlink at the per-user .last name is not followed", async () => {
    const name = `pl-${randomHex(4)}`;
    const { sims: [a], paths } = await plantedWorld(name);
    const lstat = a.runtime.lstat;
    let readLast = false;
    const readFile = a.runtime.readFile;
    a.runtime = {
      ...a.runtime,
      lstat: async (p) => {
        const stat = await lstat(p);
        return p === paths.last ? { ...stat, isFile: false, isSymlink: true } : stat;
      },
      readFile: (p) => {
        if (p === paths.last) readLast = true;
        return readFile(p);
      },
    };
    const tokens = await acquireInTurn(name, [a, a]);
    assertGrowing(tokens);
    assert.equal(readLast, false, "the planted link was read through");
  });
});
