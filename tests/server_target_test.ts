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

describe("server kind: lock() on a server that stops answering", () => {
  test("with a timeout: LockTimeoutError at the timeout, on an open and on a new connection; the crossing grant is released", async () => {
    const server = await stallableServer();
    // A relay gives lock() a connection of its own, opened while the server is stopped.
    const { relay } = await recordingRelay(server.port);
    let log = "";
    try {
      const warm = await lock("warm", { server: server.address });
      await warm.release();
      signal(server.child.pid, "SIGSTOP");
      const [open, fresh] = await Promise.all([
        timed(lock("stalled-open", { server: server.address, timeout: 300, ttl: 60_000 })),
        timed(
          lock("stalled-new", { server: `127.0.0.1:${relay.port}`, timeout: 300, ttl: 60_000 }),
        ),
      ]);
      for (const { ms, error } of [open, fresh]) {
        assert.ok(error instanceof LockTimeoutError, `got ${error}`);
        assert.ok(ms >= 250 && ms < 2_000, `rejected after ${Math.round(ms)} ms`);
      }
      signal(server.child.pid, "SIGCONT");
      // The open connection's ACQUIRE reaches the server now and is granted:
      // unless the client releases it, the name stays held for the 60 s ttl.
      const checker = new LockClient({ port: server.port });
      try {
        for (const name of ["stalled-open", "stalled-new"]) {
          const lease = await checker.acquire(name, { timeout: 5_000 });
          assert.equal(await checker.release(name), true, `${name} released (${lease.token})`);
        }
      } finally {
        await checker.close();
      }
    } finally {
      log = await stopServer(server);
      await relay.close();
    }
    assert.equal(
      grantsOf(log, "stalled-open"),
      2,
      `the abandoned grant and the checker's:\n${log}`,
    );
    assert.doesNotMatch(log, /lease expired/);
  });

  test("with a signal: LockAbortedError at the abort, with or without a timeout; the crossing grant is released", async () => {
    const server = await stallableServer();
    const { relay } = await recordingRelay(server.port);
    let log = "";
    try {
      const warm = await lock("warm", { server: server.address });
      await warm.release();
      signal(server.child.pid, "SIGSTOP");
      const controller = new AbortController();
      setTimeout(() => controller.abort(new Error("the caller gave up")), 100);
      const [open, fresh] = await Promise.all([
        timed(lock("aborted-open", { server: server.address, signal: controller.signal })),
        timed(
          lock("aborted-new", {
            server: `127.0.0.1:${relay.port}`,
            timeout: 30_000,
            signal: controller.signal,
          }),
        ),
      ]);
      for (const { ms, error } of [open, fresh]) {
        assert.ok(error instanceof LockAbortedError, `got ${error}`);
        assert.ok(ms >= 50 && ms < 1_000, `rejected after ${Math.round(ms)} ms`);
      }
      signal(server.child.pid, "SIGCONT");
      const checker = new LockClient({ port: server.port });
      try {
        for (const name of ["aborted-open", "aborted-new"]) {
          await checker.acquire(name, { timeout: 5_000, ttl: 60_000 });
          assert.equal(await checker.release(name), true);
        }
      } finally {
        await checker.close();
      }
    } finally {
      log = await stopServer(server);
      await relay.close();
    }
    assert.equal(
      grantsOf(log, "aborted-open"),
      2,
      `the abandoned grant and the checker's:\n${log}`,
    );
    assert.doesNotMatch(log, /lease expired/);
  });
});
