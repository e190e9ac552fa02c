// The port kind within one process: k3portlock's addresses byte for byte,
// PortLock's surface, the TCP majority rule, wake on release, bad keys.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import {
  inspect,
  InvalidLockNameError,
  lock,
  LockTimeoutError,
  PortLock,
  tryLock,
} from "../mod.ts";
import { type Connection, runtime, type SocketAddress } from "../lib/runtime/mod.ts";
import type { Attempt, Grant } from "../lib/_kind.ts";
import { abstractName, basePort, MAX_PORT_KEY_BYTES } from "../lib/port/port_name.ts";
import { portModeFor, portTarget } from "../lib/port/port_target.ts";
import { randomHex } from "../lib/socket/handshake.ts";
import { freedAfterForks, takenAfterForks } from "./_waiting.ts";
import { startWorker } from "./_workers.ts";

const unique = (prefix: string) => `${prefix}-${randomHex(6)}`;

function settle(attempt: Attempt): Grant | null {
  if (attempt.acquired) return attempt.grant;
  attempt.cancelWake?.();
  return null;
}

/** Listens on 127.0.0.1:`port` like an unrelated service; null if taken. */
/** Why occupy() last failed, per error code: a failing search says what it met. */
const occupyFailures = new Map<string, number>();

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

async function occupy(port: number): Promise<net.Server | null> {
  const server = net.createServer((socket) => socket.destroy());
  return await new Promise((resolve) => {
    server.once("error", (error: NodeJS.ErrnoException) => {
      const code = error.code ?? error.message;
      occupyFailures.set(code, (occupyFailures.get(code) ?? 0) + 1);
      resolve(null);
    });
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => resolve(server));
  });
}

/**
 * A port waiter that notes when its watch has heard the holder's greeting: a
 * release before that (a loaded machine) would leave nothing to wake it.
 */
function greetingWaiter(key: string) {
  let heard = false;
  const waiter = portTarget({
    ...runtime,
    connect: async (address, timeout) => {
      const conn = await runtime.connect(address, timeout);
      const onData = conn.onData.bind(conn);
      conn.onData = (handler) =>
        onData((chunk) => {
          handler(chunk);
          heard = true;
        });
      return conn;
    },
  }, key);
  /** Resolves true once greeted, false after 5 s without. */
  const greeted = async () => {
    for (let i = 0; i < 500 && !heard; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return heard;
  };
  return { waiter, greeted };
}

describe("k3portlock's addresses", () => {
  test("the port of a key matches k3portlock's sha1 vectors", async () => {
    const vectors: [string, number][] = [
      ["k1", 53029],
      ["x", 57490],
      ["mylock", 44655],
      ["é", 43005],
      ["", 51305],
    ];
    for (const [key, port] of vectors) assert.equal(await basePort(key), port, key);
  });

  test("the Linux abstract name is NUL, /portlock/ and the raw UTF-8 key", () => {
    const name = abstractName("my-é");
    assert.deepEqual(
      [...new TextEncoder().encode(name)],
      [0, ...new TextEncoder().encode("/portlock/my-é")],
    );
  });

  test("keys over 96 bytes are refused with a clear InvalidLockNameError", async () => {
    const long = "k".repeat(MAX_PORT_KEY_BYTES + 1);
    assert.throws(() => new PortLock(long), (error: unknown) => {
      assert.ok(error instanceof InvalidLockNameError);
      assert.match(error.message, /\\0\/portlock\//);
      assert.match(error.message, /at most 96 bytes/);
      return true;
    });
    await assert.rejects(lock(long, { kind: "port" }), InvalidLockNameError);
    const longest = new PortLock("k".repeat(MAX_PORT_KEY_BYTES));
    assert.equal(await longest.tryAcquire(), true);
    await longest.release();
  });
});

describe("port kind in one process", () => {
  const servers: net.Server[] = [];
  after(() => {
    for (const server of servers) server.close();
  });

  test("PortLock offers acquire, tryAcquire, release and locked, like k3portlock", async () => {
    const portLock = new PortLock(unique("class"), { timeout: 200, sleepTime: 5 });
    assert.equal(portLock.locked, false);
    assert.equal(await portLock.tryAcquire(), true);
    assert.equal(portLock.locked, true);
    assert.equal(await portLock.tryAcquire(), true, "acquiring again while held is a no-op");
    await portLock.release();
    await portLock.release();
    assert.equal(portLock.locked, false);
    await portLock.acquire();
    await portLock[Symbol.asyncDispose]();
    assert.equal(portLock.locked, false);
  });

  test("two acquire() calls at once on one PortLock share one hold", async () => {
    const portLock = new PortLock(unique("twice"), { timeout: 500, sleepTime: 5 });
    await Promise.all([portLock.acquire(), portLock.acquire(), portLock.tryAcquire()]);
    assert.equal(portLock.locked, true);
    await portLock.release();
    assert.equal(portLock.locked, false);
  });

  test("acquire() times out with LockTimeoutError, like PortlockTimeout", async () => {
    const key = unique("timeout");
    const holder = portTarget({ ...runtime }, key);
    const grant = settle(await holder.tryAcquire())!;
    try {
      const started = performance.now();
      await assert.rejects(new PortLock(key, { timeout: 150 }).acquire(), (error: unknown) => {
        assert.ok(error instanceof LockTimeoutError);
        assert.equal(error.timeout, 150);
        return true;
      });
      const took = performance.now() - started;
      assert.ok(took >= 140 && took < 1_500, `took ${took} ms`);
    } finally {
      await grant.release();
    }
  });

  test("a k3portlock-style bind of the abstract name excludes us, and ours excludes it", async () => {
    const key = unique("raw");
    const address = { transport: "unix" as const, path: abstractName(key) };
    const raw = await runtime.listen(address, (conn) => conn.close());
    assert.equal(await tryLock(key, { kind: "port" }), null);
    await raw.close();
    const held = await takenAfterForks(() => tryLock(key, { kind: "port" }));
    assert.ok(held);
    await assert.rejects(runtime.listen(address, () => {}), { code: "EADDRINUSE" });
    await held.release();
  });

  test("a waiter that connects before the holder has its token is greeted with the token, not 0", async () => {
    const key = unique("early");
    const written: string[] = [];
    const early: Connection = {
      onData() {},
      onClose() {},
      write: (data) => void written.push(new TextDecoder().decode(data)),
      close() {},
      abort() {},
      unref() {},
      bufferedAmount: 0,
      onDrain() {},
      pause() {},
      resume() {},
    };
    // The connection is accepted as the bind completes, before the token is drawn.
    const target = portTarget({
      ...runtime,
      listen: async (address, onConnection) => {
        const listener = await runtime.listen(address, onConnection);
        onConnection(early);
        return listener;
      },
    }, key);
    const grant = settle(await target.tryAcquire())!;
    try {
      assert.deepEqual(written, [`PORTLOCK_HELD ${grant.token}\n`]);
      assert.ok(grant.token > 0);
    } finally {
      await grant.release();
    }
  });

  test("a greeting token far beyond any clock (an imposter bound the name) is not taken up", async () => {
    const key = unique("imposter");
    // Whoever binds the name holds it; this one greets with 2^53 - 1.
    const imposter = await runtime.listen(
      { transport: "unix", path: abstractName(key) },
      (conn) => {
        conn.write(new TextEncoder().encode(`PORTLOCK_HELD ${Number.MAX_SAFE_INTEGER}\n`));
      },
    );
    setTimeout(() => imposter.close(), 300);
    const tokens: number[] = [];
    for (let i = 0; i < 3; i++) {
      const held = await lock(key, { kind: "port", timeout: 5_000 });
      tokens.push(held.token);
      await held.release();
    }
    const other = await lock(`${key}-other`, { kind: "port" });
    tokens.push(other.token);
    await other.release();
    for (const token of tokens) assert.ok(Number.isSafeInteger(token), `token ${token}`);
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1], `${tokens}`);
    assert.ok(tokens[0] < Date.now() * 1000 + 60_000_000, "tokens still follow the clock");
  });

  test("inspect() can only tell held from free", async () => {
    const key = unique("inspect");
    assert.equal(await inspect(key, { kind: "port" }), null);
    const target = portTarget({ ...runtime }, key);
    const grant = settle(await target.tryAcquire())!;
    const seen = await portTarget({ ...runtime }, key).inspect();
    assert.equal(seen?.kind, "port");
    assert.equal(seen?.pid, 0, "no holder details exist");
    await grant.release();
    assert.ok(await freedAfterForks(async () => await target.inspect() === null));
  });

  test("off Linux, holding 2 of the 3 TCP ports holds the lock", async () => {
    // Find a key whose three ports are all free here.
    let key = "";
    let base = 0;
    occupyFailures.clear();
    for (let i = 0; i < 100 && !key; i++) {
      const candidate = unique("tcp");
      const port = await basePort(candidate);
      const probes = await Promise.all([0, 1, 2].map((n) => occupy(port + n)));
      await Promise.all(probes.map((probe) => probe && closeServer(probe)));
      if (probes.every(Boolean)) [key, base] = [candidate, port];
    }
    assert.ok(key, `no key with three free ports: ${JSON.stringify([...occupyFailures])}`);
    // Each bind of a port just given back waits out a forked child's copy.
    const occupyFreed = async (port: number, what: string) => {
      const server = await takenAfterForks(() => occupy(port));
      assert.ok(server, what);
      servers.push(server);
    };
    await occupyFreed(base, "a stranger takes the first port");
    const first = portTarget({ ...runtime }, key, "tcp");
    const grant = settle(await first.tryAcquire());
    assert.ok(grant, "ports +1 and +2 are a majority");
    assert.equal(await occupy(base + 1), null);
    assert.equal(settle(await portTarget({ ...runtime }, key, "tcp").tryAcquire()), null);
    await grant.release();

    await occupyFreed(base + 2, "the lock's ports are given back");
    assert.equal(settle(await first.tryAcquire()), null, "one free port of three is not enough");
    await occupyFreed(base + 1, "a minority bind is given back");
  });

  test("a waiter is woken by the release without polling", async () => {
    const key = unique("wake");
    const holder = portTarget({ ...runtime }, key);
    const grant = settle(await holder.tryAcquire())!;
    const { waiter, greeted } = greetingWaiter(key);
    const attempt = await waiter.tryAcquire();
    assert.equal(attempt.acquired, false);
    if (attempt.acquired) return;
    let wokenEarly = false;
    const woken = attempt.wake!.then(() => (wokenEarly = true));
    assert.ok(await greeted(), "the waiter heard the holder's greeting");
    assert.equal(wokenEarly, false, "not woken while the lock is held");
    await grant.release();
    // The wake promise is all there is (no polling here): it resolving at all
    // is the wake-up; the bound only keeps a broken one from hanging.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      woken,
      new Promise((_, reject) => timer = setTimeout(() => reject(new Error("not woken")), 10_000)),
    ]).finally(() => clearTimeout(timer));
    attempt.cancelWake?.();
    // Taken on the first try unless a child forked meanwhile holds the bind
    // (see freedAfterForks); lock() then simply tries again, and so does this.
    const next = await takenAfterForks(async () => settle(await waiter.tryAcquire()));
    assert.ok(next, "the waiter takes the lock once it was woken");
    assert.ok(next.token > grant.token, "the waiter's token outgrows the holder it saw");
    await next.release();
  });

  test(
    "a waiter's token outgrows the token its holder announced, even one from a clock an hour ahead",
    {
      skip: portModeFor(runtime) !== "abstract" &&
        "the fake holder binds the Linux abstract socket",
    },
    async () => {
      const key = unique("floor");
      const ahead = Date.now() * 1000 + 3_600_000_000; // µs, an hour ahead
      // Another process's holder, as a waiter sees it: bound, greeting every
      // connection with its token.
      const conns = new Set<Connection>();
      const holder = await runtime.listen(
        { transport: "unix", path: abstractName(key) } as SocketAddress,
        (conn) => {
          conns.add(conn);
          conn.write(new TextEncoder().encode(`PORTLOCK_HELD ${ahead}\n`));
        },
      );
      const { waiter, greeted } = greetingWaiter(key);
      try {
        const attempt = await waiter.tryAcquire();
        assert.equal(attempt.acquired, false, "the fake holder has the lock");
        if (attempt.acquired) return;
        const woken = attempt.wake!; // reading it opens the watch
        assert.ok(await greeted(), "the waiter heard the holder's greeting");
        await holder.close();
        for (const conn of conns) conn.close();
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          woken,
          new Promise((_, reject) =>
            timer = setTimeout(() => reject(new Error("not woken")), 10_000)
          ),
        ]).finally(() => clearTimeout(timer));
        attempt.cancelWake?.();
        const next = settle(await waiter.tryAcquire());
        assert.ok(next, "free once the holder let go");
        assert.ok(next.token > ahead, `${next.token} > ${ahead}`);
        await next.release();
      } finally {
        await holder.close();
        for (const conn of conns) conn.close();
      }
    },
  );

  test("a waiter takes the lock its holder released while another thread's children still hold copies of the bind", async () => {
    // See freedAfterForks: a child between fork and exec keeps the bind alive.
    const worker = await startWorker(
      new URL("./fixtures/spawn_loop_worker.ts", import.meta.url),
      4_000,
    );
    try {
      await worker.waitFor("spawning");
      const key = unique("forks");
      const deadline = performance.now() + 2_000;
      let rounds = 0;
      let slow = 0; // hand-overs over 0.5 ms: a bind still taken, or a busy machine
      for (; rounds < 200 && performance.now() < deadline; rounds++) {
        const held = await lock(key, { kind: "port" });
        let releasing = false;
        const waiting = lock(key, { kind: "port", timeout: 5_000 }).then((next) => {
          assert.ok(releasing, "the waiter took the lock while it was held");
          return next;
        });
        await new Promise((resolve) => setTimeout(resolve, 1));
        releasing = true;
        await held.release();
        const before = performance.now();
        const next = await waiting;
        if (performance.now() - before > 0.5) slow++;
        await next.release();
      }
      assert.ok(rounds >= 20, `only ${rounds} rounds in 2 s`);
      console.log(`${rounds} hand-overs beside a spawning worker, ${slow} slower than 0.5 ms`);
    } finally {
      await worker.terminate();
    }
  });

  test("lock() with kind port hands over between two waiters in one process in FIFO order", async () => {
    const key = unique("fifo");
    const order: number[] = [];
    const first = await lock(key, { kind: "port" });
    const waiting = [1, 2].map((n) =>
      lock(key, { kind: "port", timeout: 2_000 }).then(async (held) => {
        order.push(n);
        await held.release();
      })
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    await first.release();
    await Promise.all(waiting);
    assert.deepEqual(order, [1, 2]);
  });
});
