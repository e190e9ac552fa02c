// `socketlock run` with no controlling terminal (cron, CI, a service) starts
// its command in a process group of its own. A shell script dies at SIGTERM,
// while the job it started lives on in that group: the lock must not be
// freed, nor `run` end, while anything of the group still runs.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import process from "node:process";
import { tryLock } from "../mod.ts";
import {
  type Child,
  childRuntimes,
  type RuntimeName,
  scriptCommand,
  spawnCommand,
  tempDirsRemovedAfter,
} from "./_processes.ts";
import { serveProcess, signal, within } from "./_server_helpers.ts";
import { eventually } from "./_waiting.ts";

const CLI = new URL("../lib/cli.ts", import.meta.url).pathname;
const tempDir = tempDirsRemovedAfter();

/** The process group of `pid`, or null once it no longer runs (a zombie does not). */
function runningGroup(pid: number): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return fields[0] === "Z" ? null : Number(fields[2]);
  } catch {
    return null;
  }
}

/** The CLI with no controlling terminal, whatever the runner has. */
function cliWithoutTerminal(rt: RuntimeName, args: string[]): Child {
  const [cmd, base] = scriptCommand(rt, CLI);
  return spawnCommand("setsid", [cmd, ...base, ...args]);
}

/**
 * A job that records its pid in `dir`/job.pid and loops forever, its output
 * elsewhere (its open pipes would keep the run's end pending).
 */
function job(dir: string, ignoreTerm: boolean): string {
  const trap = ignoreTerm ? `trap "" TERM; ` : "";
  return `exec >/dev/null 2>&1; echo $$ > ${dir}/job.pid; ${trap}while :; do sleep 0.05; done`;
}

describe("socketlock run without a terminal: the command's process group", {
  skip: process.platform !== "linux" && "Linux only (setpriv/timeout grouping)",
}, () => {
  const kids: Child[] = [];
  const jobs: number[] = [];
  after(() => {
    for (const pid of jobs) {
      // Only while it runs: then its group's id cannot have been reused.
      const group = runningGroup(pid);
      if (group !== null) signal(-group, "SIGKILL");
      signal(pid, "SIGKILL");
    }
    for (const kid of kids) kid.process.kill("SIGKILL");
  });

  async function jobPid(dir: string): Promise<number> {
    let pid = 0;
    const file = `${dir}/job.pid`;
    assert.ok(
      await eventually(
        () => existsSync(file) && (pid = Number(readFileSync(file, "utf8"))) > 0,
        20_000,
      ),
      "the job started",
    );
    jobs.push(pid);
    return pid;
  }

  /** Polls `tryLock` until the lock is free; whether `pid` still ran at that moment. */
  async function runningWhenFreed(name: string, dir: string, pid: number): Promise<boolean> {
    for (const deadline = Date.now() + 15_000; Date.now() < deadline;) {
      const held = await tryLock(name, { dir });
      if (held) {
        const running = runningGroup(pid) !== null;
        await held.release();
        return running;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`lock "${name}" still held after 15 s`);
  }

  for (const rt of childRuntimes(0)) {
    test(`SIGTERM to run from ${rt}: the job a script left, even one ignoring SIGTERM, ends before the lock is freed`, async () => {
      const dir = await tempDir();
      const script = `echo started; sh -c '${job(dir, true)}'; echo job-ended`;
      const run = cliWithoutTerminal(rt, ["run", "term", "--dir", dir, "--", "sh", "-c", script]);
      kids.push(run);
      await run.waitFor("started");
      const pid = await jobPid(dir);
      assert.notEqual(runningGroup(pid), run.pid, "the command has a process group of its own");
      signal(run.pid, "SIGTERM");
      assert.equal(
        await runningWhenFreed("term", dir, pid),
        false,
        "the lock was freed while the job ran",
      );
      const result = await within(run.done, 15_000, "run's end after SIGTERM");
      assert.equal(result.code, 143, `the script's own end by SIGTERM; ${result.stderr}`);
      assert.match(result.stderr, /left processes running/);
    });
  }

  for (const rt of childRuntimes(1)) {
    test(`a script run from ${rt} that exits leaving a background job: the job is stopped before the lock is freed, the exit code stays the script's`, async () => {
      const dir = await tempDir();
      // It exits once the job has said its pid: else `run` may stop the job
      // (rightly) before it got that far, and the test would not see it.
      const script = `sh -c '${job(dir, false)}' & ` +
        `while [ ! -s ${dir}/job.pid ]; do sleep 0.01; done; echo started; exit 3`;
      const run = cliWithoutTerminal(rt, ["run", "bg", "--dir", dir, "--", "sh", "-c", script]);
      kids.push(run);
      const pid = await jobPid(dir);
      assert.equal(
        await runningWhenFreed("bg", dir, pid),
        false,
        "the lock was freed while the job ran",
      );
      const result = await within(run.done, 15_000, "run's end");
      assert.equal(result.code, 3, result.stderr);
      assert.match(result.stderr, /left processes running/);
    });
  }

  for (const rt of childRuntimes(2)) {
    test(`a lost lock: run from ${rt} SIGKILLs the job a script left that ignores SIGTERM, then exits 69`, async () => {
      const dir = await tempDir();
      const server = await serveProcess("node");
      kids.push(server.child);
      const script = `echo started; sh -c '${job(dir, true)}'; echo job-ended`;
      const run = cliWithoutTerminal(rt, [
        "run",
        "lost",
        "--server",
        server.address,
        "--",
        "sh",
        "-c",
        script,
      ]);
      kids.push(run);
      await run.waitFor("started");
      const pid = await jobPid(dir);
      signal(server.child.pid, "SIGKILL");
      const result = await within(run.done, 15_000, "run's end after the lock was lost");
      assert.equal(runningGroup(pid), null, "the job runs on after the lock was lost");
      assert.match(result.stderr, /lock "lost" was lost/);
      assert.equal(result.code, 69, result.stderr);
    });
  }
});
