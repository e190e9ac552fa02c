// The server kind as lock()/tryLock() see it: a tryLock never queues on the
// server, and a lock() on a server that stops answering (SIGSTOP: the
// kernel still accepts) keeps its timeout and its signal, while a grant that
// crosses the give-up is released.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type * as net from "node:net";
import {
  lock,
  LockAbortedError,
  LockBusyError,
  LockClient,
  LockTimeoutError,
  serve,
  tryLock,
} from "../mod.ts";
import { childRuntimes } from "./_processes.ts";
import { relayProxy } from "./_relay_proxy.ts";
import { serveProcess, type ServerProcess, signal, sleep, within } from "./_server_helpers.ts";

/** A relay to `port` that records every request line a client sends. */
async function recordingRelay(port: number) {
  const sent: string[] = [];
  const relay = await relayProxy(port, (client: net.Socket, upstream: net.Socket) => {
    let partial = "";
    client.on("data", (data: Buffer) => {
      const lines = (partial + data.toString()).split("\n");
      partial = lines.pop()!;
      sent.push(...lines);
      upstream.write(data);
    });
    upstream.on("data", (data: Buffer) => client.write(data));
  });
  return { relay, sent };
}

/** Starts a server process with its debug log (grants, releases, expiries) on stderr. */
function stallableServer(): Promise<ServerProcess> {
  return serveProcess(childRuntimes(0)[0], ["-v"]);
}

/** Resumes and kills `server`, resolving with its log. */
async function stopServer(server: ServerProcess): Promise<string> {
  signal(server.child.pid, "SIGCONT");
  signal(server.child.pid, "SIGKILL");
  return (await server.child.done).stderr;
}

/**
 * Once the server answers again, each name is free within 5 s: a grant that
 * crossed the give-up was released, not left to its 60 s lease.
 */
async function takeAndRelease(port: number, names: string[]): Promise<void> {
  const checker = new LockClient({ port });
  try {
    for (const name of names) {
      const lease = await checker.acquire(name, { timeout: 5_000, ttl: 60_000 });
      assert.equal(await checker.release(name), true, `${name} released (${lease.token})`);
    }
  } finally {
    await checker.close();
  }
}

/** The server's log shows the abandoned grant and the checker's, and no lease ran out. */
function assertAbandonedGrantReleased(log: string, name: string): void {
  assert.equal(grantsOf(log, name), 2, `the abandoned grant and the checker's:\n${log}`);
  assert.doesNotMatch(log, /lease expired/);
}

/** The grants of `name` in a server's debug log. */
function grantsOf(log: string, name: string): number {
  return log.split("\n").filter((line) =>
    /\bgranted\b/.test(line) && line.includes(`name="${name}"`)
  ).length;
}

/** Settles `promise` and reports how long it took and what it rejected with. */
async function timed(promise: Promise<unknown>): Promise<{ ms: number; error: unknown }> {
  const start = performance.now();
  let error: unknown = null;
  try {
    await within(promise, 10_000, "lock() on a stalled server settles");
  } catch (caught) {
    error = caught;
  }
  return { ms: performance.now() - start, error };
}

describe("server kind: tryLock never queues on the server", () => {
  test("tryLock and lock(timeout: 0) on a held name send ACQUIRE with wait 0, and no CANCEL", async () => {
    await using server = await serve({ port: 0 });
    const { relay, sent } = await recordingRelay(server.address.port);
    const holder = new LockClient({ port: server.address.port });
    try {
      await holder.acquire("wire");
      const address = `127.0.0.1:${relay.port}`;
      assert.equal(await tryLock("wire", { server: address }), null);
      await assert.rejects(lock("wire", { server: address, timeout: 0 }), LockBusyError);
      const acquires = sent.filter((line) => / ACQUIRE /.test(line));
      assert.deepEqual(acquires.map((line) => line.replace(/^\S+ /, "")), [
        "ACQUIRE wire 0",
        "ACQUIRE wire 0",
      ]);
      assert.deepEqual(sent.filter((line) => / CANCEL /.test(line)), []);
      assert.equal(server.stats().waiting, 0);
    } finally {
      await holder.close();
      await relay.close();
    }
  });

  test("100 tryLocks racing a release: none is granted after queueing, and none waits on the server", async () => {
    const log: { message: string; client: unknown }[] = [];
    await using server = await serve({
      port: 0,
      verbose: true,
      logger: { log: (_level, message, fields) => log.push({ message, client: fields?.client }) },
    });
    const address = `127.0.0.1:${server.address.port}`;
    const holder = new LockClient({ port: server.address.port });
    let maxWaiting = 0;
    const poll = setInterval(() => maxWaiting = Math.max(maxWaiting, server.stats().waiting), 0);
    try {
      await holder.acquire("race");
      const holderClient = (await holder.status("race"))!.client;
      let won = 0;
      await within(
        (async () => {
          for (let i = 0; i < 100; i++) {
            const trying = tryLock("race", { server: address });
            setTimeout(() => void holder.release("race"), 0);
            const held = await trying;
            if (held) {
              won++;
              await held.release();
            }
            await sleep(2);
            await holder.acquire("race", { timeout: 5_000 });
          }
        })(),
        60_000,
        "100 tryLock/release races",
      );
      const queuedGrants = log.filter((entry) =>
        entry.message === "granted after waiting" && entry.client !== holderClient
      );
      assert.deepEqual(queuedGrants, [], `tryLocks won outright: ${won}`);
      assert.equal(maxWaiting, 0, "a tryLock waited on the server");
    } finally {
      clearInterval(poll);
      await holder.close();
    }
  });
});

/**
 * Starts a server process, stops it (SIGSTOP: the kernel still accepts),
 * and runs `lockBoth` with its address (a connection lock() already has
 * open) and a relay's (a new connection, opened while it is stopped); each
 * call must reject as `check` says. Then the server resumes, the two names
 * must be free at once, and its log must show the crossing grant released.
 */
async function giveUpOnStoppedServer(
  names: [string, string],
  lockBoth: (open: string, fresh: string) => Promise<unknown>[],
  check: (error: unknown, ms: number) => void,
): Promise<void> {
  const server = await stallableServer();
  const { relay } = await recordingRelay(server.port);
  let log = "";
  try {
    const warm = await lock("warm", { server: server.address });
    await warm.release();
    signal(server.child.pid, "SIGSTOP");
    const outcomes = await Promise.all(
      lockBoth(server.address, `127.0.0.1:${relay.port}`).map(timed),
    );
    for (const { ms, error } of outcomes) check(error, ms);
    signal(server.child.pid, "SIGCONT");
    // The open connection's ACQUIRE reaches the server now and is granted:
    // unless the client releases it, the name stays held for the 60 s ttl.
    await takeAndRelease(server.port, names);
  } finally {
    log = await stopServer(server);
    await relay.close();
  }
  assertAbandonedGrantReleased(log, names[0]);
}

describe("server kind: lock() on a server that stops answering", () => {
  test("with a timeout: LockTimeoutError at the timeout, on an open and on a new connection; the crossing grant is released", async () => {
    await giveUpOnStoppedServer(
      ["stalled-open", "stalled-new"],
      (open, fresh) => [
        lock("stalled-open", { server: open, timeout: 300, ttl: 60_000 }),
        lock("stalled-new", { server: fresh, timeout: 300, ttl: 60_000 }),
      ],
      (error, ms) => {
        assert.ok(error instanceof LockTimeoutError, `got ${error}`);
        assert.ok(ms >= 250 && ms < 2_000, `rejected after ${Math.round(ms)} ms`);
      },
    );
  });

  test("with a signal: LockAbortedError at the abort, with or without a timeout; the crossing grant is released", async () => {
    const controller = new AbortController();
    await giveUpOnStoppedServer(
      ["aborted-open", "aborted-new"],
      (open, fresh) => {
        setTimeout(() => controller.abort(new Error("the caller gave up")), 100);
        return [
          lock("aborted-open", { server: open, signal: controller.signal }),
          lock("aborted-new", { server: fresh, timeout: 30_000, signal: controller.signal }),
        ];
      },
      (error, ms) => {
        assert.ok(error instanceof LockAbortedError, `got ${error}`);
        assert.ok(ms >= 50 && ms < 1_000, `rejected after ${Math.round(ms)} ms`);
      },
    );
  });
});
