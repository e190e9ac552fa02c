// The CLI from each runtime: run under a lock, busy/no-wait, signals, status.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdir, rm } from "node:fs/promises";
import process from "node:process";
import { tryLock } from "../mod.ts";
import {
  type Child,
  childRuntimes,
  fixture,
  runtimeBinary,
  type RuntimeName,
  scriptCommand,
  spawnCommand,
  spawnScript,
  tempDir,
} from "./_processes.ts";

const CLI = new URL("../lib/cli.ts", import.meta.url).pathname;

function cli(rt: RuntimeName, args: string[]): Child {
  const [cmd, base] = scriptCommand(rt, CLI);
  return spawnCommand(cmd, [...base, ...args]);
}

describe("the socketlock CLI", () => {
  const dirs: string[] = [];
  const kids: Child[] = [];
  after(async () => {
    for (const kid of kids) kid.process.kill("SIGKILL");
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  async function dir(): Promise<string> {
    const made = await tempDir();
    dirs.push(made);
    return made;
  }

  for (const rt of childRuntimes(1)) {
    test(`run from ${rt} executes the command under the lock and exits with its code`, async () => {
      const d = await dir();
      const run = cli(rt, ["run", "job", "--dir", d, "--", "sh", "-c", "echo inside; exit 7"]);
      kids.push(run);
      const result = await run.done;
      assert.equal(result.code, 7, result.stderr);
      assert.match(result.stdout, /inside/);
      const held = await tryLock("job", { dir: d });
      assert.ok(held, "the lock is free once the command ended");
      await held.release();
    });

    test(`run --no-wait from ${rt} exits 75 naming the holder's pid when the lock is busy`, async () => {
      const d = await dir();
      const holder = spawnScript("node", fixture("hold_lock.ts"), [
        JSON.stringify({ dir: d }),
        "busy",
      ]);
      kids.push(holder);
      await holder.waitFor("held");
      const run = cli(rt, ["run", "busy", "--dir", d, "--no-wait", "--", "true"]);
      kids.push(run);
      const result = await run.done;
      assert.equal(result.code, 75, result.stderr);
      assert.match(result.stderr, new RegExp(`held by pid ${holder.pid}`));
      const waited = cli(rt, ["run", "busy", "--dir", d, "--wait", "100", "--", "true"]);
      kids.push(waited);
      const timedOut = await waited.done;
      assert.equal(timedOut.code, 75);
      assert.match(timedOut.stderr, /Timed out after 100 ms/);
    });

    test(`SIGTERM to run from ${rt} reaches the command, and the lock is released`, async () => {
      const d = await dir();
      // 42, not 143: Deno's node:child_process reports an exit code of 128+n as "killed by signal n".
      const script =
        'trap "echo got-term; exit 42" TERM; echo started; while :; do sleep 0.05; done';
      const run = cli(rt, ["run", "sig", "--dir", d, "--", "sh", "-c", script]);
      kids.push(run);
      await run.waitFor("started");
      assert.equal(await tryLock("sig", { dir: d }), null, "held while the command runs");
      // Not run.process.kill(): after it, Deno's node:child_process reports any exit as the signal.
      process.kill(run.pid, "SIGTERM");
      const result = await run.done;
      assert.match(result.stdout, /got-term/);
      assert.equal(result.code, 42, "the command's own exit code after the forwarded signal");
      const held = await tryLock("sig", { dir: d });
      assert.ok(held);
      await held.release();
    });

    test(`run from ${rt} killed outright takes its command down with it (Linux)`, async () => {
      if (process.platform !== "linux") return;
      const d = await dir();
      // The command would write after the lock holder (run) is gone: it must not.
      const script = `echo started; sleep 1; echo too-late > ${d}/after`;
      const run = cli(rt, ["run", "orphan", "--dir", d, "--", "sh", "-c", script]);
      kids.push(run);
      await run.waitFor("started");
      process.kill(run.pid, "SIGKILL");
      await run.done;
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      assert.deepEqual(
        (await readdir(d)).filter((f) => f === "after"),
        [],
        "the command ran on without the lock",
      );
    });
  }

  test("status --json reports the holder while held and free afterwards", async () => {
    const d = await dir();
    const holder = spawnScript("bun", fixture("hold_lock.ts"), [JSON.stringify({ dir: d }), "st"]);
    kids.push(holder);
    await holder.waitFor("held");
    const held = await cli("node", ["status", "st", "--dir", d, "--json"]).done;
    assert.equal(held.code, 1);
    const report = JSON.parse(held.stdout);
    assert.equal(report.held, true);
    assert.equal(report.holder.pid, holder.pid);
    holder.process.kill("SIGKILL");
    await holder.done;
    const free = await cli("deno", ["status", "st", "--dir", d]).done;
    assert.equal(free.code, 0, free.stderr);
    assert.match(free.stdout, /is free/);
  });

  test("under Deno, a missing permission flag is named in a LockPermissionError, not a raw NotCapable", async () => {
    const d = await dir();
    const deno = runtimeBinary("deno");
    const cases: [string[], string[], RegExp][] = [
      [["--allow-read"], [], /Deno needs --allow-env to read \$XDG_RUNTIME_DIR/],
      [
        ["--allow-read"],
        ["--dir", `${d}/sub`],
        new RegExp(`--allow-read=${d}/sub --allow-write=${d}/sub`),
      ],
      [
        ["--allow-read", "--allow-write", "--allow-env", "--allow-sys"],
        ["--kind", "port"],
        /Deno needs --allow-net to listen/,
      ],
    ];
    for (const [flags, options, message] of cases) {
      const args = [
        "run",
        ...flags,
        CLI,
        "run",
        `perm-${crypto.randomUUID()}`,
        ...options,
        "--",
        "true",
      ];
      const result = await spawnCommand(deno, args).done;
      assert.equal(result.code, 77, result.stderr);
      assert.match(result.stderr, message);
      assert.doesNotMatch(result.stderr, /NotCapable/);
    }
    // --allow-run for the command alone: it still runs (without setpriv).
    const scoped = await spawnCommand(deno, [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-sys",
      "--allow-net",
      "--allow-run=sh",
      CLI,
      "run",
      `scoped-${crypto.randomUUID()}`,
      "--dir",
      d,
      "--",
      "sh",
      "-c",
      "exit 3",
    ]).done;
    assert.equal(scoped.code, 3, scoped.stderr);
  });

  test("a command that cannot be started exits 127, usage errors exit 64 with help", async () => {
    const d = await dir();
    const missing = await cli("node", ["run", "m", "--dir", d, "--", "/no/such/command"]).done;
    assert.equal(missing.code, 127);
    // Ours, or setpriv's (Linux: the command is started through it).
    assert.match(missing.stderr, /(cannot run|failed to execute) \/no\/such\/command/);
    const usage = await cli("node", ["run", "m", "--dir", d]).done;
    assert.equal(usage.code, 64);
    assert.match(usage.stderr, /needs a command after --[\s\S]*Usage: socketlock run/);
    const unknown = await cli("node", ["run", "m", "--bogus", "--", "true"]).done;
    assert.equal(unknown.code, 64);
    assert.match(unknown.stderr, /Unknown option --bogus/);
    const bad = await cli("node", ["run", "../x", "--dir", d, "--", "true"]).done;
    assert.equal(bad.code, 64);
    assert.match(bad.stderr, /Invalid lock name/);
    const kind = await cli("node", ["status", "m", "--kind", "bogus"]).done;
    assert.equal(kind.code, 64, "not 1, which status uses for held");
    assert.match(kind.stderr, /Unknown --kind bogus/);
    const blank = await cli("node", ["run", "m", "--dir", d, "--wait=", "--", "true"]).done;
    assert.equal(blank.code, 64, "a blank --wait is not --no-wait");
    const down = await cli("node", ["status", "m", "--server", "127.0.0.1:1"]).done;
    assert.equal(down.code, 69, "an unreachable server is not a held lock");
  });
});
