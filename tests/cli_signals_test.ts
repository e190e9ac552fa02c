// `socketlock run` and the signals it did not choose: a command ended by a
// real-time signal (which has no name), and signals `run` was started with
// ignored (`nohup socketlock run`, `socketlock run … &` in a script).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import process from "node:process";
import { ignoredIn, withSignalsIgnored } from "../lib/cli/_ignored_signals.ts";
import {
  type Child,
  childRuntimes,
  NEW_MOUNT_NAMESPACE,
  type RuntimeName,
  scriptCommand,
  spawnCommand,
  tempDirsRemovedAfter,
  unshareUnavailable,
} from "./_processes.ts";
import { signal, sleep, within } from "./_server_helpers.ts";

const CLI = new URL("../lib/cli.ts", import.meta.url).pathname;
const tempDir = tempDirsRemovedAfter();
const linuxOnly = process.platform !== "linux" && "Linux only (/proc, real-time signals)";
// Node resets every ignored signal when it starts, and libuv names no
// real-time signal: neither can be told under Node (the README says so).
const notNode = (rt: RuntimeName, why: string) => rt === "node" && `Node cannot: ${why}`;

const bashAsSh = process.getuid?.() !== 0
  ? "needs root (a bind mount over /bin/sh)"
  : !existsSync("/bin/bash")
  ? "no /bin/bash"
  : unshareUnavailable(NEW_MOUNT_NAMESPACE);

/** The CLI under `rt`, through `prefix` (a program that execs it: setsid, nohup, sh). */
function cli(
  rt: RuntimeName,
  prefix: string[],
  args: string[],
  env: Record<string, string> = {},
): Child {
  const [cmd, base] = scriptCommand(rt, CLI);
  return spawnCommand(prefix[0], [...prefix.slice(1), cmd, ...base, ...args], env);
}

function ended(child: Child) {
  return within(child.done, 30_000, "run to end");
}

/** Whether `pid` runs (a zombie does not). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) [ZX]/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

describe("reading which signals are ignored", () => {
  test("ignoredIn() reads the passed signals from a SigIgn mask", () => {
    assert.deepEqual(ignoredIn("Name:\tx\nSigIgn:\t0000000000001001\n"), ["SIGHUP"]);
    assert.deepEqual(ignoredIn("SigIgn:\t0000000000004003\n"), ["SIGINT", "SIGTERM", "SIGHUP"]);
    assert.deepEqual(ignoredIn("SigIgn:\t0000000000001000\n"), []);
    assert.deepEqual(ignoredIn("no such line"), []);
  });

  test("withSignalsIgnored() wraps the command only when there is something to ignore", () => {
    assert.deepEqual(withSignalsIgnored("echo", ["a b"], []), ["echo", ["a b"]]);
    assert.deepEqual(withSignalsIgnored("echo", ["a b"], ["SIGINT", "SIGHUP"]), [
      "/bin/sh",
      ["-c", `trap '' INT HUP && exec "$@"`, "sh", "echo", "a b"],
    ]);
  });
});

describe("socketlock run: signals", { skip: linuxOnly }, () => {
  for (const rt of childRuntimes(0)) {
    test(`${rt}: a command ended by a real-time signal (34) exits 162`, {
      skip: notNode(rt, "libuv reports a real-time signal as exit code 0"),
    }, async () => {
      const dir = await tempDir();
      const run = cli(rt, ["setsid"], ["run", "rt", "--dir", dir, "--", "sh", "-c", "kill -34 $$"]);
      const result = await ended(run);
      assert.equal(result.code, 128 + 34, result.stderr);
    });

    test(`${rt}: after a command ended by a real-time signal, what it left is stopped before the lock is released`, async () => {
      const dir = await tempDir();
      const pidFile = `${dir}/job.pid`;
      const run = cli(rt, ["setsid"], [
        "run",
        "rt-job",
        "--dir",
        dir,
        "--",
        "sh",
        "-c",
        `sleep 30 >/dev/null 2>&1 & echo $! > ${pidFile}; sleep 0.3; kill -34 $$`,
      ]);
      await ended(run);
      assert.ok(existsSync(pidFile), "the command did not start its job");
      const job = Number(readFileSync(pidFile, "utf8"));
      const alive = running(job);
      if (alive) signal(job, "SIGKILL");
      assert.equal(alive, false, "the command's job ran on after the lock was released");
    });

    test(
      `${rt}: under nohup, SIGHUP ends neither run nor its command, which runs with SIGHUP ignored`,
      {
        skip: notNode(rt, "it resets ignored signals at start-up"),
      },
      async () => {
        const dir = await tempDir();
        const run = cli(rt, ["nohup"], [
          "run",
          "nohup",
          "--dir",
          dir,
          "--",
          "sh",
          "-c",
          "grep SigIgn /proc/$$/status; echo started; sleep 1; echo survived",
        ]);
        await run.waitFor("started", 20_000);
        process.kill(run.pid, "SIGHUP");
        const result = await ended(run);
        assert.equal(result.code, 0, result.stderr);
        assert.match(result.stdout, /survived/);
        const mask = BigInt(`0x${/SigIgn:\s*([0-9a-f]+)/.exec(result.stdout)?.[1] ?? "0"}`);
        assert.equal(mask & 1n, 1n, `the command's SIGHUP is not ignored: ${result.stdout}`);
      },
    );

    test(`${rt}: under nohup, where /bin/sh is bash, a command named like an option ("-x") runs`, {
      skip: notNode(rt, "it resets ignored signals at start-up") || bashAsSh || false,
    }, async () => {
      const bin = await tempDir();
      const dir = await tempDir();
      writeFileSync(`${bin}/-x`, `#!/bin/sh\necho "-x ran: $*"\n`);
      chmodSync(`${bin}/-x`, 0o755);
      // bash's exec takes "-x" for an option of its own; dash's does not.
      const run = cli(
        rt,
        [
          "unshare",
          ...NEW_MOUNT_NAMESPACE,
          "--",
          "/bin/bash",
          "-c",
          `mount --bind /bin/bash /bin/sh && trap '' HUP && exec "$@"`,
          "bash",
        ],
        ["run", "dash-x", "--dir", dir, "--", "-x", "a b"],
        { PATH: `${bin}:${process.env.PATH}` },
      );
      const result = await ended(run);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /-x ran: a b/);
    });

    test(
      `${rt}: started with SIGINT ignored (a script's \`run … &\`), SIGINT does not end its wait`,
      {
        skip: notNode(rt, "it resets ignored signals at start-up"),
      },
      async () => {
        const dir = await tempDir();
        const holder = cli(rt, ["setsid"], [
          "run",
          "bg",
          "--dir",
          dir,
          "--",
          "sh",
          "-c",
          "echo held; sleep 2",
        ]);
        await holder.waitFor("held", 20_000);
        // A non-interactive shell starts a background job with SIGINT ignored.
        const waiter = cli(rt, ["sh", "-c", `trap '' INT; exec "$@"`, "sh"], [
          "run",
          "bg",
          "--dir",
          dir,
          "--wait",
          "20000",
          "--",
          "echo",
          "ran",
        ]);
        await sleep(700);
        assert.ok(running(waiter.pid), "the waiter did not wait");
        process.kill(waiter.pid, "SIGINT");
        const result = await ended(waiter);
        await ended(holder);
        assert.equal(result.code, 0, result.stderr);
        assert.match(result.stdout, /ran/);
      },
    );
  }
});
