// LockClient against real servers: background renewal, loud loss (the
// signal aborts by the lease's end, before anyone else is granted), crash
// and shutdown, reconnect after a restart, waits, aborts, auth, and the
// unified lock(name, { server }).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  lock,
  LockAbortedError,
  LockBusyError,
  LockClient,
  LockError,
  LockLostError,
  LockPermissionError,
  type LockServer,
  LockTimeoutError,
  serve,
} from "../mod.ts";
import process from "node:process";
import * as net from "node:net";
import {
  type Child,
  childRuntimes,
  fixture,
  freePort,
  inOneRunner,
  spawnScript,
} from "./_processes.ts";
import { CLOCK_MARGIN, leaseEnd, WAIT_RATE_MARGIN } from "../lib/server/_lease_keeper.ts";
import {
  abortedSignal,
  RawConnection,
  serveProcess,
  signal,
  sleep,
  within,
} from "./_server_helpers.ts";
import { eventually, reboundAfterForks } from "./_waiting.ts";

describe("LockClient", () => {
  let server: LockServer;
  let port: number;
  const clients: LockClient[] = [];
  const kids: Child[] = [];
  const client = (options: { port?: number; token?: string; connectTimeout?: number } = {}) => {
    const made = new LockClient({ port, ...options });
    clients.push(made);
    return made;
  };
  before(async () => {
    server = await serve({ port: 0 });
    port = server.address.port;
  });
  after(async () => {
    for (const kid of kids) {
      signal(kid.pid, "SIGCONT");
      kid.process.kill("SIGKILL");
    }
    for (const made of clients) await made.close();
    await server.close();
  });

  test("lock() renews its lease in the background, so a 600 ms lease is still held after 1.5 s", async () => {
    // Renewed every 200 ms: only an event loop stalled for 400 ms loses it.
    const held = await client().lock("renewing", { ttl: 600 });
    const other = client();
    await sleep(1_500);
    assert.equal(held.signal.aborted, false);
    await assert.rejects(other.acquire("renewing", { timeout: 0 }), LockBusyError);
    await held.release();
    const lease = await other.acquire("renewing", { timeout: 0 });
    assert.ok(lease.token > held.token);
    await other.release("renewing");
  });

  for (const rt of childRuntimes(0)) {
    test(`held.signal aborts by the lease's end when a ${rt} server stops answering, before anyone else is granted`, async () => {
      const proc = await serveProcess(rt);
      kids.push(proc.child);
      const holderClient = client({ port: proc.port });
      const acquiredAt = performance.now();
      const held = await holderClient.lock("frozen", { ttl: 600 });
      let abortedAt = 0;
      held.signal.addEventListener("abort", () => (abortedAt = performance.now()));
      const waiter = client({ port: proc.port, connectTimeout: 10_000 });
      let grantedAt = 0;
      const waiting = waiter.acquire("frozen", { timeout: 20_000 }).then((lease) => {
        grantedAt = performance.now();
        return lease;
      });
      await sleep(100);
      signal(proc.child.pid, "SIGSTOP"); // the server hears nothing, renewals go unanswered
      await within(abortedSignal(held.signal), 5_000, "the abort");
      assert.ok(held.signal.reason instanceof LockLostError, String(held.signal.reason));
      // The safety lies in the order checked below; this bound (loose, for a
      // loaded machine) catches an abort that waits for far more than the lease.
      assert.ok(
        abortedAt - acquiredAt <= 600 + 1_000,
        `aborted ${abortedAt - acquiredAt} ms after acquiring`,
      );
      await sleep(200);
      signal(proc.child.pid, "SIGCONT");
      const lease = await within(waiting, 10_000, "the waiter's grant");
      assert.ok(
        grantedAt > abortedAt,
        "the old holder knew it had lost the lock before the new one got it",
      );
      assert.ok(lease.token > held.token);
      signal(proc.child.pid, "SIGKILL");
    });
  }

  test("renew() to a shorter ttl moves the held lock's end earlier: held.signal aborts by the new end when the server stops answering", async () => {
    const proc = await serveProcess("node");
    kids.push(proc.child);
    const c = client({ port: proc.port });
    const held = await c.lock("shortened", { ttl: 60_000 });
    const renewedAt = performance.now();
    assert.equal((await c.renew("shortened", 600)).ttl, 600);
    let abortedAt = 0;
    held.signal.addEventListener("abort", () => (abortedAt = performance.now()));
    signal(proc.child.pid, "SIGSTOP"); // renewals go unanswered from now on
    try {
      await within(abortedSignal(held.signal), 5_000, "the abort by the shortened lease's end");
      assert.ok(held.signal.reason instanceof LockLostError, String(held.signal.reason));
      // Loose, for a loaded machine: the old 60 s end would be far past it.
      assert.ok(
        abortedAt - renewedAt <= 600 + 1_000,
        `aborted ${abortedAt - renewedAt} ms after the renewal to 600 ms`,
      );
    } finally {
      signal(proc.child.pid, "SIGCONT");
      signal(proc.child.pid, "SIGKILL");
    }
  });

  test("held.signal aborts with LockLostError when the server shuts down", async () => {
    const own = await serve({ port: 0 });
    const c = client({ port: own.address.port });
    const held = await c.lock("shutdown");
    await own.close();
    await within(abortedSignal(held.signal), 5_000, "the abort");
    assert.ok(held.signal.reason instanceof LockLostError);
    assert.match((held.signal.reason as Error).message, /connection to the lock server closed/);
    await held.release(); // releasing a lost lock is quiet
  });

  test("the client reconnects with backoff after the server restarts on the same port", async () => {
    const first = await serveProcess("node");
    kids.push(first.child);
    const c = client({ port: first.port, connectTimeout: 15_000 });
    assert.equal(await c.health(), true);
    signal(first.child.pid, "SIGKILL");
    await first.child.done;
    // The call starts while nothing listens; the server is back 300 ms later.
    const acquiring = c.acquire("after-restart", { timeout: 10_000 });
    await sleep(300);
    const second = await serveProcessOnPort(first.port, kids);
    const lease = await within(acquiring, 20_000, "acquire after restart");
    assert.ok(lease.token > 0);
    assert.equal(await c.release("after-restart"), true);
    signal(second.pid, "SIGKILL");
  });

  test("a wait that runs out while no server can be reached says so, not that the lock was held", async () => {
    const port = await freePort();
    const c = client({ port });
    const viaClient = await c.acquire("down", { timeout: 300 }).catch((e) => e);
    const viaLock = await lock("down", { server: `127.0.0.1:${port}`, timeout: 300 })
      .catch((e) => e);
    for (const error of [viaClient, viaLock]) {
      assert.ok(!(error instanceof LockTimeoutError), String(error));
      assert.ok(error instanceof LockError, String(error));
      assert.match(error.message, /Cannot reach the lock server .*ECONNREFUSED/);
    }
  });

  test("acquire() with timeout 0 throws LockBusyError naming the holder, and a wait times out with LockTimeoutError", async () => {
    const holder = client();
    await holder.acquire("busy");
    const other = client();
    const busy = await other.acquire("busy", { timeout: 0 }).catch((e) => e);
    assert.ok(busy instanceof LockBusyError, String(busy));
    assert.equal(busy.holder?.pid, process.pid);
    assert.match(busy.message, /held by pid \d+/);
    const started = performance.now();
    const timedOut = await other.acquire("busy", { timeout: 150 }).catch((e) => e);
    assert.ok(timedOut instanceof LockTimeoutError, String(timedOut));
    assert.ok(performance.now() - started >= 140);
    assert.equal(server.stats().waiting, 0, "the server forgot the wait");
    await holder.release("busy");
  });

  test("an AbortSignal cancels a wait at once, and the server withdraws it", async () => {
    const holder = client();
    await holder.acquire("aborted");
    const controller = new AbortController();
    const waiting = client().acquire("aborted", { signal: controller.signal }).catch((e) => e);
    assert.ok(await eventually(() => server.stats().waiting === 1), "the wait reached the server");
    controller.abort();
    // At once: the bound only catches an abort that waits for the holder.
    assert.ok((await within(waiting, 5_000, "the aborted wait")) instanceof LockAbortedError);
    assert.ok(await eventually(() => server.stats().waiting === 0), "the server withdrew it");
    await holder.release("aborted");
  });

  test("release() is false for a name not held, and renew() of one throws LockLostError", async () => {
    const c = client();
    assert.equal(await c.release("never-held"), false);
    await assert.rejects(c.renew("never-held"), LockLostError);
    const lease = await c.acquire("renew-me", { ttl: 500 });
    const renewed = await c.renew("renew-me", 2_000);
    assert.equal(renewed.token, lease.token);
    assert.equal(renewed.ttl, 2_000);
    assert.equal(await c.release("renew-me"), true);
    assert.equal(await c.release("renew-me"), false);
  });

  test("a ttl under 30 ms or not a number is refused with a clear error before anything is sent", async () => {
    const c = client();
    const address = `127.0.0.1:${port}`;
    const bad = /Option ttl must be a number from 30 to 2147483647/;
    for (const ttl of [0, 1, 29, -5, NaN, Infinity, "5000" as unknown as number]) {
      await assert.rejects(c.acquire("ttl-checked", { ttl }), bad, String(ttl));
      await assert.rejects(c.lock("ttl-checked", { ttl }), bad, String(ttl));
      await assert.rejects(lock("ttl-checked", { server: address, ttl }), bad, String(ttl));
    }
    const lease = await c.acquire("ttl-checked", { ttl: 30 });
    assert.equal(lease.ttl, 30);
    await assert.rejects(c.renew("ttl-checked", 1), bad);
    assert.equal(await c.release("ttl-checked"), true);
  });

  test("lock(name, { server }) from the main module takes the lock through the server", async () => {
    const held = await lock("unified", { server: `127.0.0.1:${port}` });
    assert.equal(held.kind, "server");
    const status = await client().status("unified");
    assert.equal(status?.token, held.token);
    assert.equal(status?.pid, held.info.pid);
    await held.release();
    assert.equal(await client().status("unified"), null);
  });

  test("with auth on, a connection that does not authenticate in time is closed, however busy", async () => {
    const guarded = await serve({ port: 0, token: "secret", idleTimeout: 400 });
    try {
      const raw = await RawConnection.open(guarded.address.port);
      const started = performance.now();
      // Busy, but never authenticating: any byte resets the idle clock.
      const chatter = setInterval(() => raw.send(" "), 50);
      try {
        await within(raw.closed, 5_000, "the server closes the connection");
      } finally {
        clearInterval(chatter);
      }
      assert.ok(performance.now() - started >= 300);
      assert.match(raw.text, /^\* BYE not authenticated within 400 ms$/m);
    } finally {
      await guarded.close();
    }
  });

  test("with auth on, a connection that sends nothing is closed at the 10 s auth deadline, not the idle timeout", async () => {
    const guarded = await serve({ port: 0, token: "secret", idleTimeout: 60_000 });
    try {
      const raw = await RawConnection.open(guarded.address.port);
      const started = performance.now();
      await within(raw.closed, 15_000, "the server closes the connection");
      const took = performance.now() - started;
      assert.ok(took >= 9_000 && took < 14_000, `closed after ${took} ms`);
    } finally {
      await guarded.close();
    }
  });

  test("with auth on, only a client with the right token gets in, and the secret never crosses the wire", async () => {
    const secret = "s3cret-" + crypto.randomUUID();
    const guarded = await serve({ port: 0, token: secret });
    try {
      const good = client({ port: guarded.address.port, token: secret });
      const lease = await good.acquire("guarded");
      assert.ok(lease.token > 0);
      await good.release("guarded");
      const none = await client({ port: guarded.address.port }).acquire("guarded").catch((e) => e);
      // A permission problem (CLI exit 77), not a server that is down.
      assert.ok(
        none instanceof LockPermissionError && /requires a token/.test(none.message),
        String(none),
      );
      const wrong = await client({ port: guarded.address.port, token: "nope" }).acquire("guarded")
        .catch((e) => e);
      assert.ok(
        wrong instanceof LockPermissionError && /refused our token/.test(wrong.message),
        String(wrong),
      );
      const imposter = await client({ port, token: secret }).acquire("guarded").catch((e) => e);
      assert.ok(
        imposter instanceof LockError && /cannot prove it knows it/.test(imposter.message),
        String(imposter),
      );
      const raw = await RawConnection.open(guarded.address.port);
      assert.match(await raw.ask("HEALTH"), / OK$/);
      assert.match(await raw.ask("ACQUIRE guarded"), /ERR AUTH_REQUIRED/);
      const hello = await raw.ask("HELLO 1 test");
      assert.match(hello, / OK socketlock\/1 [0-9a-f]{32}$/);
      assert.ok(!raw.text.includes(secret));
      assert.match(await raw.ask(`AUTH ${"0".repeat(64)} ${"1".repeat(32)}`), /ERR AUTH_FAILED/);
      await within(raw.closed, 2_000, "the server closes after a failed AUTH");
    } finally {
      await guarded.close();
    }
  });

  test("health() is true for a live server and false when nothing listens", async () => {
    assert.equal(await client().health(), true);
    const gone = await serve({ port: 0 });
    const deadPort = gone.address.port;
    await gone.close();
    assert.equal(await client({ port: deadPort, connectTimeout: 300 }).health(), false);
  });

  for (const rt of childRuntimes(1)) {
    test(`a ${rt} script holding server locks it never releases still exits, and the server frees them`, async () => {
      const child = spawnScript(rt, fixture("server_idle_client.ts"), [String(port)]);
      kids.push(child);
      const result = await within(child.done, 30_000, "the script's exit");
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^held \d+ \d+/);
      const c = client();
      await within(c.acquire("idle-exit", { timeout: 5_000 }), 10_000, "the freed lock");
      await c.release("idle-exit");
    });
  }
});

/** Starts a node server on `port` (retrying while the old one's port frees up). */
async function serveProcessOnPort(port: number, kids: Child[]): Promise<Child> {
  for (let i = 0;; i++) {
    try {
      const proc = await serveProcess("node", ["--port", String(port)]);
      kids.push(proc.child);
      return proc.child;
    } catch (error) {
      if (i >= 20) throw error;
      await sleep(100);
    }
  }
}

// Runs in one runner of three (its waits take ~10 s); SOCKETLOCK_ALL_RUNTIMES=1: all.
if (inOneRunner(1)) {
  describe("a client waiting on a server that vanished without a word", () => {
    test(
      "notices within seconds (it asks HEALTH after 5 s of silence) and waits on over a new connection",
      { timeout: 60_000 },
      async () => {
        const first = await serve({ port: 0 });
        const serverPort = first.address.port;
        // A proxy whose existing connections can go silent in both directions,
        // as a powered-off host or a partition leaves them: no FIN, no RST.
        const silenced = new Set<net.Socket>();
        const sockets = new Set<net.Socket>();
        const proxy = net.createServer((inbound) => {
          const outbound = net.connect(serverPort, "127.0.0.1");
          for (const [from, to] of [[inbound, outbound], [outbound, inbound]]) {
            sockets.add(from);
            from.on("data", (data) => silenced.has(from) || to.write(data));
            from.on("error", () => {});
            from.on("close", () => silenced.has(from) || to.destroy());
          }
        });
        await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
        const proxyPort = (proxy.address() as net.AddressInfo).port;
        let second: LockServer | null = null;
        const holder = new LockClient({ port: serverPort });
        const waiter = new LockClient({ port: proxyPort, connectTimeout: 5_000 });
        try {
          const held = await holder.lock("vanish");
          const waiting = waiter.lock("vanish");
          await sleep(300);
          for (const socket of sockets) silenced.add(socket);
          // The server goes, and another comes up on its port with the lock free.
          await held.release();
          await holder.close();
          await first.close();
          // Rebound as a port just freed is (see reboundAfterForks): under a
          // parallel runner another test's child can hold the listener a moment.
          second = await reboundAfterForks(() => serve({ port: serverPort }));
          const started = performance.now();
          const got = await within(waiting, 20_000, "the waiter gets the lock from the new server");
          assert.ok(performance.now() - started < 15_000);
          await got.release();
        } finally {
          await waiter.close();
          for (const socket of sockets) socket.destroy();
          proxy.close();
          await second?.close();
        }
      },
    );
  });
}

describe("the client's lease end", () => {
  test("a lease granted after a long wait keeps a rate margin on the wait, and is still a lease", () => {
    const day = 86_400_000;
    // A 10 s lease granted after a day's wait by the server's clock.
    const end = leaseEnd(1_000, 10_000, day);
    assert.ok(end <= 1_000 + day * (1 - WAIT_RATE_MARGIN) + 10_000 * (1 - CLOCK_MARGIN));
    assert.ok(end > 1_000 + day, "the lease is not over on arrival");
    assert.equal(leaseEnd(1_000, 10_000), 1_000 + 10_000 * (1 - CLOCK_MARGIN));
  });
});
