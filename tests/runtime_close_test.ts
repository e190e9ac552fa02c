// What is true the moment a close or release returns, on the runtime running
// this file (the same file runs under `deno test -A`, `bun test` and
// `node --test`). Each test's child closes or releases and at once blocks its
// own event loop: the effect must be seen during the block. Whatever waits
// for the closing process to yield (Deno cancelling a pending read or
// accept, libuv shutting a socket down on its next turn) reaches a waiter
// only once that process is idle again, which a busy holder may not be for
// a long time.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn as spawnChild } from "node:child_process";
import process from "node:process";
import { type Connection, runtime, type SocketAddress } from "../lib/runtime/mod.ts";
import { portModeFor, portTarget } from "../lib/port/port_target.ts";
import { abstractName, basePort } from "../lib/port/port_name.ts";

// The children block for 3 s (close_then_block.ts) and 5 s
// (release_then_block.ts); every effect must be seen well within that.
const WITHIN_3S_BLOCK = 2_500;
const WITHIN_5S_BLOCK = 3_500;

/** Rejects after `ms` so that no wait in these tests can hang the runner. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A fixture run by this very runtime, with its stdout collected. */
function startFixture(name: string, args: string[]) {
  const script = new URL(`./fixtures/${name}`, import.meta.url).pathname;
  const argv = runtime.name === "deno" ? ["run", "-A", script, ...args] : [script, ...args];
  const child: ChildProcess = spawnChild(process.execPath, argv, {
    stdio: ["pipe", "pipe", "inherit"],
  });
  let output = "";
  child.stdout!.on("data", (chunk) => output += chunk);
  return {
    child,
    output: () => output,
    printed: (text: string, ms: number) =>
      within(
        new Promise<void>((resolve, reject) => {
          const check = () => output.includes(text) && resolve();
          child.stdout!.on("data", check);
          child.once("exit", () => reject(new Error(`child exited; stdout: ${output}`)));
          check();
        }),
        ms,
        `the child to print ${JSON.stringify(text)}`,
      ),
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}

/** Resolves when `conn` has received a line, and gives a promise of its close. */
function watch(conn: Connection): { line: Promise<void>; closed: Promise<void> } {
  let text = "";
  let lineResolve!: () => void;
  const line = new Promise<void>((resolve) => lineResolve = resolve);
  conn.onData((chunk) => {
    text += new TextDecoder().decode(chunk);
    if (text.includes("\n")) lineResolve();
  });
  return { line, closed: new Promise<void>((resolve) => conn.onClose(resolve)) };
}

describe(`runtime adapter (${runtime.name}): closing takes effect before the process yields`, () => {
  test("close() with nothing queued sends the FIN while the closing process blocks", async () => {
    const child = startFixture("close_then_block.ts", []);
    try {
      await child.printed("port ", 20_000);
      const port = Number(/port (\d+)/.exec(child.output())![1]);
      const conn = await runtime.connect({ transport: "tcp", hostname: "127.0.0.1", port }, 5_000);
      const seen = watch(conn);
      conn.write(new Uint8Array([1]));
      // The child closes its side, then blocks its event loop before it prints.
      await within(seen.closed, WITHIN_3S_BLOCK, "the close to arrive while the child blocks");
      assert.ok(!child.output().includes("unblocked"), "the FIN came only after the block");
    } finally {
      // Killed mid-block: what it does once unblocked proves nothing more.
      child.kill();
    }
  });

  test("a port lock's release frees its address and closes its waiters' connections at once", async () => {
    const key = `close-test-${runtime.name}-${process.pid}-${Date.now()}`;
    const child = startFixture("release_then_block.ts", [key]);
    let conn: Connection | undefined;
    try {
      await child.printed("held", 20_000);
      const target = portTarget(runtime, key);
      assert.equal((await target.tryAcquire()).acquired, false, "the child holds the lock");
      // A waiter's connection, as the port kind's wake keeps it: greeted, then left open.
      const address: SocketAddress = portModeFor(runtime) === "abstract"
        ? { transport: "unix", path: abstractName(key) }
        : { transport: "tcp", hostname: "127.0.0.1", port: await basePort(key) };
      conn = await runtime.connect(address, 5_000);
      const waiter = watch(conn);
      await within(waiter.line, 5_000, "the holder's greeting");
      child.child.stdin!.write("release\n");
      await child.printed("released", 10_000);
      // The child now blocks its event loop: both must hold already.
      await within(waiter.closed, WITHIN_5S_BLOCK, "the waiter's connection to close");
      const again = await within(target.tryAcquire(), WITHIN_5S_BLOCK, "a second acquisition");
      assert.ok(!child.output().includes("unblocked"), "the effects came only after the block");
      assert.ok(again.acquired, "the address is free once release() resolved");
      await again.grant.release();
    } finally {
      conn?.abort();
      child.kill();
    }
  });
});
