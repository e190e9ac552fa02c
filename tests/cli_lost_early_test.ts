// `socketlock run` whose lease is lost right after the grant (a server crash
// or a network cut at that moment), before run has started its command:
// the command must not run on (or start at all) while another client may
// hold the lock, and run exits 69, not with the command's code.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { lock } from "../mod.ts";
import { type Child, childRuntimes } from "./_processes.ts";
import { runCli, serveProcess, signal, within } from "./_server_helpers.ts";
import { cutAfterGrant } from "./_relay_proxy.ts";

/** A command that says when it starts and when it ran to its end. */
const COMMAND = ["sh", "-c", "echo started; sleep 2; echo finished"];

describe("socketlock run: a lease lost right after the grant", () => {
  const kids: Child[] = [];
  const closers: Array<() => Promise<void>> = [];
  after(async () => {
    for (const close of closers) await close();
    for (const kid of kids) kid.process.kill("SIGKILL");
  });

  for (const rt of childRuntimes(0)) {
    test(`run from ${rt} whose connection drops with the grant does not run the command, and exits 69`, async () => {
      const server = await serveProcess("node");
      kids.push(server.child);
      const proxy = await cutAfterGrant(server.port);
      closers.push(() => proxy.close());
      const run = runCli(rt, [
        "run",
        "cut",
        "--server",
        `127.0.0.1:${proxy.port}`,
        "--",
        ...COMMAND,
      ]);
      kids.push(run);
      const result = await within(run.done, 15_000, "the run's end");
      // The server freed the dropped connection's lease: another client takes it.
      const other = await lock("cut", { server: server.address, timeout: 3_000 });
      await other.release();
      assert.doesNotMatch(result.stdout, /finished/, "the command ran to its end without the lock");
      assert.match(result.stderr, /lock "cut" was lost/);
      assert.equal(result.code, 69, "a run whose lock was lost is no success");
    });
  }

  for (const rt of childRuntimes(1)) {
    test(`run -v from ${rt} whose server is killed the moment the lock is taken stops or never starts the command`, async () => {
      for (let i = 0; i < 3; i++) {
        const server = await serveProcess("node");
        kids.push(server.child);
        const run = runCli(rt, ["run", "k", "-v", "--server", server.address, "--", ...COMMAND]);
        kids.push(run);
        run.process.stderr!.on("data", (chunk) => {
          if (String(chunk).includes("taken")) signal(server.child.pid, "SIGKILL");
        });
        const result = await within(run.done, 15_000, "the run's end");
        assert.doesNotMatch(result.stdout, /finished/, `run ${i}: the command ran to its end`);
        assert.equal(result.code, 69, `run ${i}: ${result.stderr}`);
      }
    });
  }
});
