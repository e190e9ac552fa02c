// A live holder that does not accept connections — paused, or its event
// loop blocked — lets the kernel queue them until its backlog is full, and
// then refuse more with EAGAIN (a unix socket) or drop them (TCP). Neither
// may read as "nobody listens": Bun reports every failed connect as
// ECONNREFUSED, which is the one answer taken as proof of death.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import process from "node:process";
import { tryLock } from "../mod.ts";
import { type AddressInfo, createServer } from "node:net";
import { detectRuntimeName, errorCode, runtime, type SocketAddress } from "../lib/runtime/mod.ts";
import {
  type Child,
  fixture,
  freePort,
  scriptCommand,
  spawnCommand,
  spawnScript,
  tempDir,
} from "./_processes.ts";

/** More connections than any backlog here holds (Node 511, Bun 512, Deno 1024 at most). */
const TRIES = 1_100;

describe("a holder that accepts nothing keeps its lock", () => {
  const children: Child[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const child of children) {
      for (const signal of ["SIGCONT", "SIGKILL"] as const) {
        try {
          process.kill(child.pid, signal);
        } catch { /* already gone */ }
      }
    }
    await Promise.all(children.map((child) => child.done));
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  test(`a paused folder holder keeps its lock through ${TRIES} tryLocks that fill its beacon's backlog`, async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const name = `busy-${crypto.randomUUID().slice(0, 8)}`;
    const holder = spawnScript("node", fixture("hold_lock.ts"), [
      JSON.stringify({ kind: "folder", dir }),
      name,
    ]);
    children.push(holder);
    await holder.waitFor("held", 30_000);
    process.kill(holder.pid, "SIGSTOP");
    for (let i = 0; i < TRIES; i++) {
      const held = await tryLock(name, { kind: "folder", dir });
      if (held) {
        await held.release();
        assert.fail(`try ${i + 1} took the lock of a live, paused holder`);
      }
    }
  });

  test("a connect that fails for want of a file descriptor is never reported as refused", async () => {
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const [cmd, args] = scriptCommand(detectRuntimeName(), fixture("connect_without_fds.ts"));
      const quoted = [cmd, ...args, String(port)].map((a) => `'${a.replaceAll("'", "'\\''")}'`);
      const child = spawnCommand("sh", ["-c", `ulimit -n 256 && exec ${quoted.join(" ")}`]);
      children.push(child);
      const { stdout, stderr } = await child.done;
      const outcome = stdout.trim().split("\n").pop() ?? "";
      assert.match(outcome, /^(connected|error \w+)$/, `${stdout}\n${stderr}`);
      assert.notEqual(outcome, "error ECONNREFUSED", "a live listener was reported as refused");
    } finally {
      server.close();
    }
  });

  test("checking a refusal never takes the address, even for a moment: a holder can bind it meanwhile", async () => {
    const tag = `socketlock-test-refused-${crypto.randomUUID()}`;
    const tcp: SocketAddress = {
      transport: "tcp",
      hostname: "127.0.0.1",
      port: await freePort(),
    };
    // The fixtures are handed the abstract name without its NUL (argv cannot hold one).
    const addresses: SocketAddress[] = [tcp];
    if (runtime.platform === "linux") addresses.push({ transport: "unix", path: tag });
    const dir = await tempDir();
    dirs.push(dir);
    for (const [i, sent] of addresses.entries()) {
      // Another process of this runtime connects in a loop (most are
      // refused) from before the holder's binds begin until after they end.
      const stop = `${dir}/stop-${i}`;
      const looper = spawnScript(detectRuntimeName(), fixture("connect_loop.ts"), [
        JSON.stringify(sent),
        "60000",
        stop,
      ]);
      children.push(looper);
      await looper.waitFor("looping", 30_000);
      // The holder binds and closes the address in a loop meanwhile, in a
      // process of its own (see the fixture).
      const binder = spawnScript(detectRuntimeName(), fixture("bind_loop.ts"), [
        JSON.stringify(sent),
        "1500",
      ]);
      children.push(binder);
      await binder.done;
      await writeFile(stop, "");
      await looper.done;
      const [, binds, taken] = /binds (\d+) failed ?(.*)/.exec(binder.stdout()) ?? [];
      assert.ok(binds !== undefined, `the binder's report: ${binder.stdout()}`);
      assert.ok(Number(binds) > 0, "the holder bound the address");
      assert.equal(taken, "", `binds failed: ${taken}`);
      assert.match(looper.stdout(), /done \d+/);
    }
  });

  test("a listener of the same port on another local address does not make a refusal look busy", {
    skip: runtime.platform !== "linux" && "binds 127.0.0.2, which Linux's loopback has",
  }, async () => {
    const other = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.2", resolve));
    try {
      const port = (other.address() as AddressInfo).port;
      const error = await runtime.connect({ transport: "tcp", hostname: "127.0.0.1", port }, 5_000)
        .then((conn) => (conn.abort(), null), (e) => e);
      assert.equal(errorCode(error), "ECONNREFUSED", String(error));
    } finally {
      other.close();
    }
  });

  test("a connect to a unix socket whose backlog is full is never reported as refused", {
    skip: runtime.platform !== "linux" && "abstract unix names are Linux's",
  }, async () => {
    const name = `socketlock-test-backlog-${crypto.randomUUID()}`;
    const path = `\0${name}`;
    const listener = spawnScript("node", fixture("paused_listener.ts"), [name]);
    children.push(listener);
    await listener.waitFor("listening", 30_000);
    process.kill(listener.pid, "SIGSTOP");
    const open = [];
    let failure: unknown = null;
    for (let i = 0; i < TRIES && !failure; i++) {
      try {
        open.push(await runtime.connect({ transport: "unix", path }, 1_000));
      } catch (error) {
        failure = error;
      }
    }
    for (const conn of open) conn.abort();
    assert.ok(failure, `all ${TRIES} connections were queued`);
    assert.notEqual(errorCode(failure), "ECONNREFUSED", String(failure));
  });
});
