// The CLI when things go wrong: a command that outlives a lost lock, system
// errors no kind translated (a message and an exit code, not a stack
// trace), and `--kind redis`, which a command line cannot give a client.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { type Child, childRuntimes } from "./_processes.ts";
import { runCli, serveProcess, signal, within } from "./_server_helpers.ts";

describe("socketlock CLI: a lost lock, system errors, --kind redis", () => {
  const kids: Child[] = [];
  after(() => {
    for (const kid of kids) kid.process.kill("SIGKILL");
  });

  for (const rt of childRuntimes(2)) {
    test(`run from ${rt} stops a command that ignores SIGTERM once the lock is lost, and exits 69`, async () => {
      const server = await serveProcess("node");
      kids.push(server.child);
      // Ignores SIGTERM and would run 20 s: long after another holder took the lock.
      const script =
        'trap "echo got-term" TERM; echo started; i=0; while [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; echo finished';
      const run = runCli(rt, ["run", "lost", "--server", server.address, "--", "sh", "-c", script]);
      kids.push(run);
      await run.waitFor("started");
      signal(server.child.pid, "SIGKILL");
      const result = await within(run.done, 15_000, "the end of the run after the lock was lost");
      assert.match(result.stderr, /lock "lost" was lost/);
      assert.match(result.stdout, /got-term/);
      assert.doesNotMatch(result.stdout, /finished/, "the command went on without the lock");
      assert.equal(result.code, 69, "a run that lost its lock is no success");
    });
  }

  test(
    "a system error (here: a --dir nothing can be created in) is a message and 69/77, not a stack trace",
    {
      skip: process.platform !== "linux" && "uses /proc",
    },
    async () => {
      // Ours, mode 555: it passes the directory checks, then creating a file fails.
      const dir = `/proc/${process.pid}`;
      for (const rt of childRuntimes(0)) {
        const result = await runCli(rt, ["run", "sys", "--dir", dir, "--", "true"]).done;
        assert.ok(
          result.code === 69 || result.code === 77,
          `${rt}: ${result.code} ${result.stderr}`,
        );
        assert.match(result.stderr, /^socketlock: /);
        assert.doesNotMatch(result.stderr, /^\s+at /m, "no stack trace");
      }
    },
  );

  test("--kind redis, which needs a client object, is a usage error (64) saying so", async () => {
    for (
      const args of [["run", "r", "--kind", "redis", "--", "true"], [
        "status",
        "r",
        "--kind",
        "redis",
      ]]
    ) {
      const result = await runCli(childRuntimes(1)[0], args).done;
      assert.equal(result.code, 64, result.stderr);
      assert.match(result.stderr, /cannot use --kind redis/);
      assert.doesNotMatch(result.stderr, /Use one of: .*redis/);
    }
  });
});
