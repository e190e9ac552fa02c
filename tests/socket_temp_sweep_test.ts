// The socket kind's temp files (`<name>.lock.<id>.tmp`, `.re.tmp`) that a
// creator killed between writing and removing them leaves behind: swept on a
// process's first try in a lock directory and after a break, once older than
// TEMP_GRACE_MS; nothing else is ever removed; a creator stalled long enough
// to have its temp swept holds nothing and tries again (forced with the
// scripted runtime); and real SIGKILLed children leave nothing for good.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  lstatSync,
  lutimesSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tryLock } from "../mod.ts";
import { randomHex } from "../lib/socket/handshake.ts";
import { formatLockFile, lastToken, lockPaths, parseLockFile } from "../lib/socket/lock_file.ts";
import { TEMP_GRACE_MS } from "../lib/_old_temps.ts";
import { socketTarget } from "../lib/socket/socket_target.ts";
import { createWorld, type SimulatedProcess } from "./_scripted_runtime.ts";
import {
  DIR,
  holderPid,
  interleaving,
  pauseAt,
  settings,
  settle,
  within,
} from "./_socket_scenarios.ts";
import { childRuntimes, fixture, spawnScript, tempDirsRemovedAfter } from "./_processes.ts";

const lockDir = tempDirsRemovedAfter();

/** Sets a path's times (a symlink's own, not its target's) well past the threshold. */
function age(path: string, symlink = false): void {
  const old = new Date(Date.now() - 4 * TEMP_GRACE_MS);
  (symlink ? lutimesSync : utimesSync)(path, old, old);
}

/** A temp file as createLockFile (or rewriteLockFile, `.re.tmp`) names it. */
function tempFile(dir: string, name: string, suffix = ".tmp", old = true): string {
  const path = `${dir}/${name}.lock.${randomHex(16)}${suffix}`;
  writeFileSync(path, "{}", { mode: 0o600 });
  if (old) age(path);
  return path;
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The socket kind's temp files in `dir`. */
function temps(dir: string): string[] {
  return readdirSync(dir).filter((file) => /\.lock\.[0-9a-f]{32}(\.re)?\.tmp$/.test(file));
}

describe("socket kind: temp files left by a crash are swept", () => {
  test("a process's first try in a lock directory sweeps old temp files; fresh ones stay", async () => {
    const dir = await lockDir();
    const old = [
      tempFile(dir, "k"),
      tempFile(dir, "k", ".re.tmp"),
      tempFile(dir, "another-lock"), // any lock's, not only the one taken
    ];
    const fresh = tempFile(dir, "k", ".tmp", false); // a live creator's
    const held = await tryLock("k", { dir });
    assert.ok(held);
    await held.release();
    for (const path of old) assert.equal(exists(path), false, `${path} swept`);
    assert.ok(exists(fresh), "a fresh temp file stays");
  });

  test("later tries leave temp files alone; breaking a stale lock sweeps them", async () => {
    const dir = await lockDir();
    const first = await tryLock("k", { dir }); // the directory's first try
    assert.ok(first);
    await first.release();
    const old = tempFile(dir, "k");
    const fresh = tempFile(dir, "k", ".tmp", false);
    // The hot path lists no directory: an uncontended acquire and a busy tryLock.
    const second = await tryLock("k", { dir });
    assert.ok(second);
    assert.equal(await tryLock("k", { dir }), null);
    await second.release();
    assert.ok(exists(old), "no sweep on later tries");
    // A garbage lock file is stale: breaking it sweeps.
    writeFileSync(`${dir}/k.lock`, "{garbage", { mode: 0o600 });
    const third = await tryLock("k", { dir });
    assert.ok(third);
    await third.release();
    assert.equal(exists(old), false, "swept after the break");
    assert.ok(exists(fresh), "a fresh temp file stays");
  });

  test("nothing that merely looks like a temp file is removed, nor any other lock file", async () => {
    const dir = await lockDir();
    const hex = randomHex(16);
    const outside = await lockDir();
    const target = `${outside}/target`;
    writeFileSync(target, "not ours", { mode: 0o600 });
    age(target);
    const lookalikes = [
      `k.lock.${hex.slice(1)}.tmp`, // 31 hex digits
      `k.lock.${hex}0.tmp`, // 33
      `k.lock.${hex.toUpperCase()}.tmp`,
      `k.lock.${hex}.tmp.x`,
      `k.lock.${hex}.tm`,
      `k.lock.${hex}.old.tmp`,
      `k.lock.${hex}.re.re.tmp`,
      `k.lock.${hex}.plant`,
      `k.${hex}.tmp`,
      `k.lock.${hex}`,
      `.lock.${hex}.tmp`, // no name
      `socketlock.key.${hex}.tmp`,
      "other.lock",
      "other.lock.last",
      "k.lock.last",
    ];
    for (const file of lookalikes) {
      writeFileSync(`${dir}/${file}`, "{}", { mode: 0o600 });
      age(`${dir}/${file}`);
    }
    writeFileSync(`${dir}/socketlock.key`, `${randomHex(32)}\n`, { mode: 0o600 });
    age(`${dir}/socketlock.key`);
    const links = [`k.lock.${randomHex(16)}.tmp`, `k.lock.${randomHex(16)}.re.tmp`];
    symlinkSync(target, `${dir}/${links[0]}`);
    symlinkSync(`${outside}/nonexistent`, `${dir}/${links[1]}`);
    for (const link of links) age(`${dir}/${link}`, true);
    const folder = `k.lock.${randomHex(16)}.tmp`;
    mkdirSync(`${dir}/${folder}`, { mode: 0o700 });
    writeFileSync(`${dir}/${folder}/inside`, "{}", { mode: 0o600 });
    age(`${dir}/${folder}/inside`);
    age(`${dir}/${folder}`);
    const control = tempFile(dir, "k"); // proves the sweeps ran

    const held = await tryLock("k", { dir }); // sweep 1: the first try here
    assert.ok(held);
    assert.equal(exists(control), false, "the first try swept");
    age(`${dir}/k.lock`); // a held lock file, old
    const control2 = tempFile(dir, "k");
    writeFileSync(`${dir}/k2.lock`, "{garbage", { mode: 0o600 });
    const broke = await tryLock("k2", { dir }); // sweep 2: after a break
    assert.ok(broke);
    assert.equal(exists(control2), false, "the break swept");

    for (const file of [...lookalikes, ...links, folder, `${folder}/inside`, "socketlock.key"]) {
      assert.ok(exists(`${dir}/${file}`), `${file} stays`);
    }
    assert.equal(readFileSync(target, "utf8"), "not ours", "a symlink's target is untouched");
    assert.ok(exists(`${dir}/k.lock`), "a held lock file stays");
    assert.equal(await tryLock("k", { dir }), null, "and its lock is still held");
    await broke.release();
    await held.release();
  });

  test("compat mode never sweeps (its directory is the shared temp dir)", async () => {
    const dir = await lockDir();
    const name = `sweep-${randomHex(4)}`;
    const old = `${dir}/.${name}.lock.${randomHex(16)}.tmp`;
    writeFileSync(old, "{}", { mode: 0o600 });
    age(old);
    writeFileSync(`${dir}/.${name}.lock`, "{garbage", { mode: 0o600 });
    const held = await tryLock(name, { dir, compat: "socketlock" }); // a first try and a break
    assert.ok(held);
    await held.release();
    assert.ok(exists(old), "left alone");
  });
});

/** Records a simulated process's file operations from now on. */
function record(sim: SimulatedProcess): string[] {
  const ops: string[] = [];
  const inner = sim.hook;
  sim.hook = async (op, path) => {
    ops.push(`${op} ${path}`);
    await inner(op, path);
  };
  return ops;
}

/** A simulated process whose wall clock runs `ms` ahead: others' fresh temp files look old to it. */
function ahead(sim: SimulatedProcess, ms: number): SimulatedProcess {
  sim.runtime.now = () => Date.now() + ms;
  return sim;
}

/**
 * Creator A (pid `pids[0]`) stalled at the file operation `at` picks, and B
 * (`pids[1]`), whose clock runs ahead so that A's temp file looks old to it.
 * `prepare` runs before A starts (to plant files).
 */
async function stalledCreator(
  label: string,
  pids: [number, number],
  at: (op: string, path: string, paths: ReturnType<typeof lockPaths>) => boolean,
  prepare: (
    world: ReturnType<typeof createWorld>,
    paths: ReturnType<typeof lockPaths>,
    name: string,
  ) => void = () => {},
) {
  const name = `${label}-${randomHex(4)}`;
  const world = createWorld();
  const [a, b] = [world.process(pids[0]), ahead(world.process(pids[1]), 2 * TEMP_GRACE_MS)];
  await a.runtime.mkdir(DIR, 0o700);
  const paths = lockPaths(DIR, name, false);
  prepare(world, paths, name);
  const stalled = pauseAt(a, (op, path) => at(op, path, paths));
  const ops = record(a);
  const aTry = socketTarget(a.runtime, settings(name)).tryAcquire();
  await within(stalled.arrived, "A is about to use its temp file");
  return { name, world, a, b, paths, stalled, ops, aTry };
}

/** File operations A made after `from` that would remake the lock directory. */
const mkdirsAfter = (ops: string[], from: number) =>
  ops.slice(from).filter((op) => op.startsWith("mkdir"));

describe("socket kind: a creator whose temp file was swept before it was used", () => {
  interleaving(
    "its link fails: it holds nothing, and neither remakes the directory nor reloads the key",
    async () => {
      // A wrote its temp file and stalls (stopped, starved) before linking it.
      const { name, world, b, paths, stalled, ops, aTry } = await stalledCreator(
        "swept",
        [301, 302],
        (op, path, paths) => op === "link" && path === paths.file,
      );
      const key = world.files.get(`${DIR}/socketlock.key`)!.data;
      // B's first try in the directory finds A's temp file old, sweeps it and takes the lock.
      const bGrant = settle(await socketTarget(b.runtime, settings(name)).tryAcquire());
      assert.ok(bGrant, "B took the lock");
      assert.deepEqual(scriptedTemps(world.files), [], "A's temp file was swept");
      const before = ops.length;
      stalled.go();
      assert.equal(settle(await within(aTry, "A's try ends")), null, "A holds nothing");
      assert.equal(holderPid(world, paths.file), 302, "B's lock file is in place");
      assert.deepEqual(mkdirsAfter(ops, before), [], "no mkdir");
      assert.deepEqual(
        ops.slice(before).filter((op) => op.includes("socketlock.key")),
        [],
        "no key reload",
      );
      assert.equal(world.files.get(`${DIR}/socketlock.key`)!.data, key, "the same key");
      await bGrant.release();
      assert.deepEqual(scriptedTemps(world.files), [], "no temp file left");
    },
  );

  interleaving(
    "with the lock free by then, it tries again with a fresh temp file and takes it",
    async () => {
      const { name, world, b, paths, stalled, ops, aTry } = await stalledCreator(
        "retry",
        [311, 312],
        (op, path, paths) => op === "link" && path === paths.file,
      );
      const bGrant = settle(await socketTarget(b.runtime, settings(name)).tryAcquire())!;
      assert.ok(bGrant);
      await bGrant.release();
      const before = ops.length;
      stalled.go();
      const aGrant = settle(await within(aTry, "A's try ends"));
      assert.ok(aGrant, "A took the free lock on its next round");
      const text = world.files.get(paths.file)!.data;
      assert.equal(parseLockFile(text)?.pid, 311, "a complete lock file of A's");
      assert.equal(parseLockFile(text)?.token, aGrant.token);
      assert.ok(aGrant.token > bGrant.token, `${aGrant.token} > ${bGrant.token}`);
      assert.deepEqual(mkdirsAfter(ops, before), [], "no mkdir");
      assert.equal(
        ops.filter((op) => op === `link ${paths.file}`).length,
        2,
        "the swept temp file's link, then a fresh one's",
      );
      assert.deepEqual(scriptedTemps(world.files), [], "no temp file left");
      await aGrant.release();
    },
  );

  interleaving(
    "its token rewrite's temp file swept before the rename: it withdraws its file and tries again",
    async () => {
      // `.last` holds a token from a clock an hour ahead: A's must be rewritten.
      const future = Date.now() * 1000 + 3_600_000_000;
      const { name, world, a, b, paths, stalled, ops, aTry } = await stalledCreator(
        "rewrite",
        [321, 322],
        (op, path) => op === "rename" && path.endsWith(".re.tmp"),
        (world, paths, name) => {
          const lastText = formatLockFile({
            pid: 999_999,
            port: 1,
            acquiredAt: Date.now(),
            host: "scripted-host",
            name,
            id: randomHex(16),
            token: future,
          }, false);
          world.files.set(paths.last, { kind: "file", data: lastText, mode: 0o600, mtimeMs: 0 });
        },
      );
      // B sweeps the rewrite's temp file on its first try, and finds A live.
      const during = settle(await socketTarget(b.runtime, settings(name)).tryAcquire());
      assert.equal(during, null, "B finds the lock held");
      assert.deepEqual(scriptedTemps(world.files), [], "A's rewrite temp file was swept");
      const before = ops.length;
      stalled.go();
      const aGrant = settle(await within(aTry, "A's try ends"));
      assert.ok(aGrant, "A took the lock on its next round");
      assert.ok(aGrant.token > future, `${aGrant.token} > ${future}`);
      assert.equal(parseLockFile(world.files.get(paths.file)!.data)?.token, aGrant.token);
      assert.ok((await lastToken(a.runtime, paths)) < aGrant.token);
      assert.deepEqual(mkdirsAfter(ops, before), [], "no mkdir");
      assert.equal(settle(await socketTarget(b.runtime, settings(name)).tryAcquire()), null);
      await aGrant.release();
      assert.deepEqual(scriptedTemps(world.files), [], "no temp file left");
    },
  );
});

/** The socket kind's temp files in a scripted world. */
function scriptedTemps(files: Map<string, unknown>): string[] {
  return [...files.keys()].filter((path) => /\.lock\.[0-9a-f]{32}(\.re)?\.tmp$/.test(path));
}

describe("socket kind: real children SIGKILLed mid-loop", () => {
  for (const rt of childRuntimes(0)) {
    test(`${rt} children killed while locking leave at most one temp file each, swept afterwards`, async () => {
      const dir = await lockDir();
      const counter = `${dir}/counter`;
      writeFileSync(counter, "0");
      const options = JSON.stringify({ dir });
      const kills = 10;
      const deadline = Date.now() + 60_000;
      for (let i = 0; i < kills && Date.now() < deadline; i++) {
        const child = spawnScript(rt, fixture("counter_worker.ts"), [
          options,
          "k",
          counter,
          "1000000",
        ]);
        try {
          // Mid-loop: a few sections done, then a random moment.
          const start = Number(readFileSync(counter, "utf8")) || 0;
          for (let polls = 0; polls < 4_000; polls++) {
            if ((Number(readFileSync(counter, "utf8")) || 0) >= start + 3) break;
            if (child.process.exitCode !== null) break;
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 40));
        } finally {
          child.process.kill("SIGKILL");
          await child.done;
        }
        assert.ok(temps(dir).length <= i + 1, `at most one temp per kill: ${temps(dir)}`);
      }
      const left = temps(dir);
      // Aged past the threshold rather than waited for.
      for (const file of left) age(`${dir}/${file}`);
      const held = await tryLock("k", { dir }); // this process's first try here
      assert.ok(held, "the killed holder's lock is broken and taken");
      await held.release();
      assert.deepEqual(temps(dir), [], `all ${left.length} crash temp files swept`);
    });
  }
});
