// The CLI from each runtime: run under a lock, busy/no-wait, signals, status.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { constants } from "node:os";
import process from "node:process";
import { tryLock } from "../mod.ts";
import {
  type Child,
  childRuntimes,
  fixture,
  runtimeBinary,
  type RuntimeName,
  RUNTIMES,
  scriptCommand,
  spawnCommand,
  spawnScript,
  tempDir,
} from "./_processes.ts";
import { eventually } from "./_waiting.ts";

/** True while `pid` runs (a zombie, waiting to be reaped, no longer does). */
function isRunning(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

const CLI = new URL("../lib/cli.ts", import.meta.url).pathname;

function cli(rt: RuntimeName, args: string[]): Child {
  const [cmd, base] = scriptCommand(rt, CLI);
  return spawnCommand(cmd, [...base, ...args]);
}

/** The CLI with no controlling terminal (as under cron, CI or a service), whatever the runner has. */
function cliWithoutTerminal(rt: RuntimeName, args: string[]): Child {
  const [cmd, base] = scriptCommand(rt, CLI);
  return spawnCommand("setsid", [cmd, ...base, ...args]);
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
      // What to type next names the same lock: its directory too.
      assert.ok(result.stderr.includes(`socketlock status busy --dir ${d}`), result.stderr);
      assert.match(result.stderr, /--wait MS/);
      const waited = cli(rt, ["run", "busy", "--dir", d, "--wait", "100", "--", "true"]);
      kids.push(waited);
      const timedOut = await waited.done;
      assert.equal(timedOut.code, 75);
      assert.match(timedOut.stderr, /timed out after 100 ms/);
      assert.ok(timedOut.stderr.includes(`socketlock status busy --dir ${d}`), timedOut.stderr);
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

    test(`Ctrl-C on the terminal reaches a command run from ${rt} once, not twice (Linux)`, {
      skip: process.platform !== "linux" && "the foreground group is read from /proc",
    }, async () => {
      const d = await dir();
      const count = `${d}/sigints`;
      const [cmd, base] = scriptCommand(rt, CLI);
      // run is the foreground job of a terminal of its own; the command counts its SIGINTs.
      const result = await spawnCommand("python3", [
        fixture("ctrl_c_in_pty.py"),
        count,
        cmd,
        ...base,
        "run",
        "ctrl-c",
        "--dir",
        d,
        "--",
        "python3",
        fixture("count_sigint.py"),
        count,
      ]).done;
      assert.equal(result.code, 0, result.stderr);
      assert.equal(
        readFileSync(count, "utf8"),
        "1",
        "the terminal's SIGINT, and no forwarded copy",
      );
    });

    test(
      `signals sent to run from ${rt} outside any terminal reach the command once each (Linux)`,
      {
        skip: process.platform !== "linux" && "the terminal state is read from /proc",
      },
      async () => {
        const d = await dir();
        const count = `${d}/signals`;
        // The counter is Node's, which counts every delivery (a relay that sends
        // a signal both to the command and to its group shows as 2).
        const run = cliWithoutTerminal(rt, [
          "run",
          "kill-int",
          "--dir",
          d,
          "--",
          runtimeBinary("node"),
          fixture("count_signals.ts"),
          count,
        ]);
        kids.push(run);
        assert.ok(
          await eventually(() => existsSync(`${count}.ready`), 20_000),
          "the command started",
        );
        process.kill(run.pid, "SIGINT");
        await new Promise((resolve) => setTimeout(resolve, 100));
        process.kill(run.pid, "SIGHUP");
        const result = await run.done;
        assert.equal(result.code, 0, result.stderr);
        assert.deepEqual(JSON.parse(readFileSync(count, "utf8")), {
          SIGINT: 1,
          SIGTERM: 0,
          SIGHUP: 1,
        });
      },
    );

    test(
      `run from ${rt} outside a terminal: the command dies with timeout if only timeout is killed (Linux)`,
      {
        skip: process.platform !== "linux" && "the parent-death signal is Linux's",
      },
      async () => {
        const d = await dir();
        const pidFile = `${d}/command.pid`;
        const run = cliWithoutTerminal(rt, [
          "run",
          "middle",
          "--dir",
          d,
          "--",
          "sh",
          "-c",
          `echo $$ > ${pidFile}; exec sleep 60 >/dev/null 2>&1`,
        ]);
        kids.push(run);
        assert.ok(await eventually(() => existsSync(pidFile), 20_000), "the command started");
        let command = 0;
        assert.ok(await eventually(() => (command = Number(readFileSync(pidFile, "utf8"))) > 0));
        const parent = Number(
          readFileSync(`/proc/${command}/stat`, "utf8").split(") ")[1].split(" ")[1],
        );
        assert.equal(readFileSync(`/proc/${parent}/comm`, "utf8").trim(), "timeout");
        process.kill(parent, "SIGKILL");
        assert.ok(
          await eventually(() => !isRunning(command), 10_000),
          "the command ran on without the lock",
        );
        const result = await run.done;
        assert.equal(result.code, 128 + constants.signals.SIGKILL);
      },
    );

    test(
      `run from ${rt} outside a terminal, killed outright, takes the command's own children down too (Linux)`,
      {
        skip: process.platform !== "linux" && "the parent-death signal is Linux's",
      },
      async () => {
        const d = await dir();
        const pidFile = `${d}/background.pid`;
        const run = cliWithoutTerminal(rt, [
          "run",
          "tree",
          "--dir",
          d,
          "--",
          "sh",
          "-c",
          // The child's output goes elsewhere: its open pipes would keep run.done pending.
          `sleep 60 >/dev/null 2>&1 & echo $! > ${pidFile}; wait`,
        ]);
        kids.push(run);
        assert.ok(await eventually(() => existsSync(pidFile), 20_000), "the command started");
        let background = 0;
        assert.ok(await eventually(() => (background = Number(readFileSync(pidFile, "utf8"))) > 0));
        assert.ok(isRunning(background));
        process.kill(run.pid, "SIGKILL");
        assert.ok(
          await eventually(() => !isRunning(background), 10_000),
          "the command's child ran on without the lock",
        );
        await run.done;
        // And the lock is free for the next run.
        const next = await cli(rt, ["run", "tree", "--dir", d, "--no-wait", "--", "true"]).done;
        assert.equal(next.code, 0, next.stderr);
      },
    );

    test(`run from ${rt} killed outright takes its command down with it (Linux)`, {
      skip: process.platform !== "linux" && "the parent-death signal is Linux's",
    }, async () => {
      const d = await dir();
      const run = cli(rt, [
        "run",
        "orphan",
        "--dir",
        d,
        "--",
        "sh",
        "-c",
        "echo started $$; exec sleep 30",
      ]);
      kids.push(run);
      await run.waitFor("started");
      let match: RegExpMatchArray | null = null;
      for (let i = 0; i < 100 && !(match = run.stdout().match(/started (\d+)\n/)); i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok(match, `no pid in ${JSON.stringify(run.stdout())}`);
      const shPid = Number(match[1]);
      process.kill(run.pid, "SIGKILL");
      // The command (30 s of sleep) must go now.
      const deadline = Date.now() + 10_000;
      while (isRunning(shPid) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(isRunning(shPid), false, "the command ran on without the lock");
      await run.done;
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
    const plain = await cli("bun", ["status", "st", "--dir", d]).done;
    assert.equal(plain.code, 1, plain.stderr);
    assert.match(
      plain.stdout,
      new RegExp(
        `^lock "st" is held by pid ${holder.pid} on host \\S+ since \\d{4}-\\d\\d-\\d\\dT\\S+Z ` +
          `\\(kind: socket, token ${report.holder.token}\\)\\n$`,
      ),
    );
    holder.process.kill("SIGKILL");
    await holder.done;
    const free = await cli("deno", ["status", "st", "--dir", d]).done;
    assert.equal(free.code, 0, free.stderr);
    assert.match(free.stdout, /is free/);
  });

  test("status of a held port lock says its holder's pid is unknown, not pid 0", async () => {
    const name = `st-port-${crypto.randomUUID().slice(0, 8)}`;
    const held = await tryLock(name, { kind: "port" });
    assert.ok(held);
    try {
      const status = await cli("node", ["status", name, "--kind", "port"]).done;
      assert.equal(status.code, 1, status.stderr);
      assert.match(status.stdout, /is held by a holder of unknown pid \(kind: port/);
    } finally {
      await held.release();
    }
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
    // Every flag the run needs but --allow-run, which is given as `allowRun`.
    const runExit3 = (allowRun: string[]) =>
      spawnCommand(deno, [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-sys",
        "--allow-net",
        ...allowRun,
        CLI,
        "run",
        `perm-${crypto.randomUUID()}`,
        "--dir",
        d,
        "--",
        "sh",
        "-c",
        "exit 3",
      ]).done;
    // --allow-run for the command alone: it still runs (without setpriv).
    const scoped = await runExit3(["--allow-run=sh"]);
    assert.equal(scoped.code, 3, scoped.stderr);
    if (process.platform === "linux") {
      assert.match(scoped.stderr, /setpriv may not be run .*--allow-run=.*setpriv/);
    }
    // No --allow-run at all: a permission problem (77), not "cannot run" (127).
    const denied = await runExit3([]);
    assert.equal(denied.code, 77, denied.stderr);
    assert.match(denied.stderr, /Deno needs --allow-run=sh/);
  });

  test("run's check of its command agrees with exec in every runtime: a file with only the others' execute bit runs for root, not for its non-root owner", async () => {
    const d = await dir();
    // Deno's node:fs accessSync judges by the owner's or the others' bits
    // (no groups, no root): root, who may exec this file, was refused (126).
    await writeFile(`${d}/others-x.sh`, "exit 0\n", { mode: 0o645 });
    const expected = process.getuid?.() === 0 ? 0 : 126;
    for (const rt of RUNTIMES) {
      const result = await cli(rt, ["run", `x-${rt}`, "--dir", d, "--", `${d}/others-x.sh`]).done;
      assert.equal(result.code, expected, `${rt}: ${result.stderr}`);
    }
  });

  test("a command not found exits 127, one not executable 126, one killed by signal N 128+N, usage errors 64 with help; --version prints the version", async () => {
    const d = await dir();
    await writeFile(`${d}/not-executable.sh`, "echo hi\n", { mode: 0o644 });
    // All at once (each is a process of its own), each on a name of its own.
    const [
      missing,
      notExecutable,
      bus,
      usage,
      unknown,
      bad,
      kind,
      blank,
      down,
      version,
      noServer,
      missingInPath,
      badAddress,
      blankDir,
      downWhileWaiting,
      statusWithCommand,
      blankHost,
    ] = await Promise
      .all(
        [
          ["run", "m1", "--dir", d, "--", "/no/such/command"],
          ["run", "m2", "--dir", d, "--", `${d}/not-executable.sh`],
          // SIGBUS: 7 on Linux, 10 on macOS; either way beyond the common few.
          ["run", "m3", "--dir", d, "--", "sh", "-c", "kill -BUS $$"],
          ["run", "m4", "--dir", d],
          ["run", "m5", "--bogus", "--", "true"],
          ["run", "../x", "--dir", d, "--", "true"],
          ["status", "m6", "--kind", "bogus"],
          ["run", "m7", "--dir", d, "--wait=", "--", "true"],
          ["status", "m8", "--server", "127.0.0.1:1"],
          ["--version"],
          ["run", "m9", "--kind", "server", "--", "true"],
          ["run", "m10", "--dir", d, "--", "no-such-command-socketlock"],
          ["run", "m11", "--server", "127.0.0.1:99999", "--", "true"],
          ["status", "m12", "--dir", ""],
          // Shorter than the client's 5 s to connect: the wait runs out first.
          ["run", "m13", "--server", "127.0.0.1:1", "--wait", "500", "--", "true"],
          ["status", "m14", "--dir", d, "--", "junk"],
          ["serve", "--host", ""],
        ].map((args) => cli("node", args).done),
      );
    assert.equal(missing.code, 127);
    // Said by run itself, before taking the lock: not by the setpriv that starts commands.
    assert.match(missing.stderr, /cannot run \/no\/such\/command: command not found/);
    assert.equal(missingInPath.code, 127);
    assert.match(missingInPath.stderr, /cannot run no-such-command-socketlock: command not found/);
    assert.match(notExecutable.stderr, /cannot run .*not-executable\.sh: permission denied/);
    assert.equal(noServer.code, 64, noServer.stderr);
    assert.match(noServer.stderr, /--kind server needs --server HOST:PORT/);
    assert.equal(notExecutable.code, 126, notExecutable.stderr);
    assert.equal(bus.code, 128 + constants.signals.SIGBUS, bus.stderr);
    assert.equal(usage.code, 64);
    assert.match(usage.stderr, /needs a command after --[\s\S]*Usage: socketlock run/);
    assert.equal(unknown.code, 64);
    assert.match(unknown.stderr, /Unknown option --bogus/);
    assert.equal(bad.code, 64);
    assert.match(bad.stderr, /Invalid lock name/);
    assert.equal(kind.code, 64, "not 1, which status uses for held");
    assert.match(kind.stderr, /Unknown --kind bogus/);
    assert.equal(blank.code, 64, "a blank --wait is not --no-wait");
    assert.equal(down.code, 69, "an unreachable server is not a held lock");
    assert.equal(downWhileWaiting.code, 69, downWhileWaiting.stderr);
    assert.match(downWhileWaiting.stderr, /Cannot reach the lock server/);
    assert.doesNotMatch(downWhileWaiting.stderr, /held/);
    assert.equal(statusWithCommand.code, 64, statusWithCommand.stderr);
    assert.equal(blankHost.code, 64, blankHost.stderr);
    assert.match(blankHost.stderr, /--host needs an address/);
    // Values that can never work are usage errors, not a lock worth retrying (69).
    assert.equal(badAddress.code, 64, badAddress.stderr);
    assert.match(badAddress.stderr, /--server: Cannot read the lock server address/);
    assert.equal(blankDir.code, 64, blankDir.stderr);
    assert.match(blankDir.stderr, /--dir needs a directory's path/);
    assert.equal(version.code, 0);
    const published = JSON.parse(readFileSync(new URL("../jsr.json", import.meta.url), "utf8"));
    assert.equal(version.stdout, `socketlock ${published.version}\n`);
  });
});
