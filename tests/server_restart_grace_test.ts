// The lock server keeps no state, so a restarted server cannot know the
// leases its previous run granted. A holder that could not hear of the
// restart (cut off by a partition, or the server's host died without a FIN)
// still counts its lease by its own clock. `restartGrace` grants nothing for
// that long after the server starts: tries are busy, waits queue and are
// granted FIFO when it ends. The cut is forced with a relay that passes
// nothing, not even the old server's close.

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { lock, LockBusyError, LockClient, serve, type ServerLease } from "../mod.ts";
import { ServeOptionError } from "../lib/server/serve.ts";
import { LockTable, Owner, type WaiterHandler } from "../lib/server/lock_table.ts";
import { DistlockdCommand, encodeDistlockdRequest } from "../lib/server/distlockd_frames.ts";
import { type Child, childRuntimes } from "./_processes.ts";
import { FakeClock } from "./_fake_table_clock.ts";
import { reboundAfterForks } from "./_waiting.ts";
import { RawConnection, runCli, serveProcess, sleep, within } from "./_server_helpers.ts";

function recorder() {
  const events: string[] = [];
  const handler = (label: string): WaiterHandler => ({
    granted: (_lease, waited) => events.push(`${label} granted after ${waited}`),
    timedOut: (holder) =>
      events.push(`${label} timed out; holder ${holder?.owner.info.client ?? "none"}`),
  });
  return { events, handler };
}

const owner = (name: string) => new Owner({ pid: 1, host: "h", client: name });

/**
 * A relay to 127.0.0.1:`port` that can be cut: after cut(), nothing passes
 * either way, and a close is not passed on either (as in a partition, or
 * from a host that died). Not relayProxy: that one passes every close on.
 */
async function cuttableRelay(port: number) {
  let cut = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    sockets.add(client).add(upstream);
    client.on("data", (chunk) => cut || upstream.write(chunk));
    upstream.on("data", (chunk) => cut || client.write(chunk));
    for (const socket of [client, upstream]) socket.on("error", () => {});
    upstream.on("close", () => cut || client.destroy());
    client.on("close", () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut: () => (cut = true),
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A free loopback port, to stop a server on and start the next one on. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("the lock table holding grants back", () => {
  test("answers tries withheld, queues waits, and grants them FIFO when the hold ends", () => {
    const clock = new FakeClock();
    const table = new LockTable(clock);
    const { events, handler } = recorder();
    table.holdGrants(1_000);
    assert.equal(table.holdingGrants, true);
    assert.equal(table.graceLeft, 1_000);
    assert.deepEqual(table.acquire("job", owner("try"), 5_000, 0), { status: "withheld" });
    assert.equal(table.names, 0, "a withheld try leaves no entry behind");
    const [a, b, c] = ["a", "b", "c"].map(owner);
    assert.equal(table.acquire("job", a, 5_000, 10_000, handler("a")).status, "queued");
    clock.advance(100);
    const second = table.acquire("job", b, 5_000, 10_000, handler("b"));
    assert.deepEqual(second.status === "queued" && second.position, 2);
    table.acquire("other", c, 5_000, 200, handler("c")); // times out during the hold
    assert.equal(table.release("job", a), false);
    clock.advance(899);
    assert.deepEqual(events, ["c timed out; holder none"]);
    assert.equal(table.held, 0);
    assert.equal(table.graceLeft, 1);
    clock.advance(1);
    assert.deepEqual(events, ["c timed out; holder none", "a granted after 1000"]);
    assert.equal(table.holdingGrants, false);
    assert.equal(table.graceLeft, 0);
    assert.equal(table.holderOf("job")?.owner, a);
    assert.equal(table.queueLength("job"), 1);
    table.release("job", a);
    assert.equal(events.at(-1), "b granted after 900");
    // Once over, a free name is granted at once again.
    assert.equal(table.acquire("free", owner("d"), 5_000, 0).status, "granted");
    table.close();
  });

  test("a timer that fires early does not end the hold early", () => {
    const clock = new FakeClock(5);
    const table = new LockTable(clock);
    const { events, handler } = recorder();
    table.holdGrants(1_000);
    table.acquire("job", owner("a"), 5_000, 10_000, handler("a"));
    clock.advance(997);
    assert.deepEqual(events, [], "the timer fired at 995, the hold ends at 1000");
    assert.equal(table.holdingGrants, true);
    clock.advance(3);
    assert.deepEqual(events, ["a granted after 1000"]);
    table.close();
  });

  test("a lease that ends during a hold passes to its waiter only when the hold ends", () => {
    const clock = new FakeClock();
    const table = new LockTable(clock);
    const { events, handler } = recorder();
    const a = owner("a");
    table.acquire("job", a, 5_000, 0);
    table.holdGrants(500);
    table.acquire("job", owner("b"), 5_000, 10_000, handler("b"));
    table.release("job", a);
    assert.equal(table.holderOf("job"), null);
    assert.deepEqual(events, []);
    clock.advance(500);
    assert.deepEqual(events, ["b granted after 500"]);
    table.close();
  });
});

describe("a restarted lock server", () => {
  const TTL = 1_500;

  /**
   * H takes "job" through a relay, the relay is cut (a partition), and the
   * server is closed and started again on its port with `restartGrace`.
   */
  async function partitionedRestart(restartGrace: number) {
    const port = await freePort();
    const s1 = await serve({ port });
    const relay = await cuttableRelay(port);
    const held = await lock("job", { server: `127.0.0.1:${relay.port}`, ttl: TTL });
    let abortedAt = 0;
    held.signal.addEventListener("abort", () => (abortedAt = performance.now()));
    relay.cut();
    await s1.close();
    // Rebound as a port just freed is (see reboundAfterForks): under a
    // parallel runner another test's child can hold s1's listener a moment.
    const s2 = await reboundAfterForks(() => serve({ port, restartGrace }));
    const startedAt = performance.now();
    return {
      port,
      held,
      startedAt,
      abortedAt: () => abortedAt,
      async close() {
        await relay.close(); // H's connection closes: its lease is lost, its release is quick
        await held.release().catch(() => {});
        await s2.close();
      },
    };
  }

  test("without a restart grace, grants a name at once that a cut-off holder still holds (documented)", async () => {
    const run = await partitionedRestart(0);
    const c = new LockClient({ port: run.port });
    try {
      const lease = await within(c.acquire("job", { timeout: 0 }), 5_000, "C's try");
      assert.equal(run.held.signal.aborted, false, "H still believes it holds the lock");
      assert.ok(lease.token > run.held.token, "fencing tokens still rise across the restart");
    } finally {
      await c.close();
      await run.close();
    }
  });

  test("with a restart grace of at least the ttl, grants nothing until the cut-off holder's lease has ended", async () => {
    const GRACE = TTL + 300;
    const run = await partitionedRestart(GRACE);
    const c = new LockClient({ port: run.port });
    try {
      const stats = await c.stats();
      assert.ok(stats.graceLeft > 0 && stats.graceLeft <= GRACE, `graceLeft ${stats.graceLeft}`);
      // A wait queues; a try meanwhile is busy, with no holder to name.
      const waiting = c.acquire("job", { timeout: 10_000 });
      const outcome = waiting.then((lease: ServerLease) => {
        const at = performance.now();
        return { lease, at, holderAborted: run.abortedAt() > 0 };
      });
      await sleep(100);
      const tryer = new LockClient({ port: run.port });
      try {
        const tried = await tryer.acquire("job", { timeout: 0 }).catch((e) => e);
        assert.ok(tried instanceof LockBusyError, `a try during the grace is busy (got ${tried})`);
        assert.equal(tried.holder, null);
      } finally {
        await tryer.close();
      }
      const { lease, at, holderAborted } = await within(outcome, 10_000, "C's wait");
      assert.ok(
        at - run.startedAt >= GRACE - 50,
        `granted ${Math.round(at - run.startedAt)} ms after the start, grace ${GRACE}`,
      );
      assert.ok(holderAborted, "H's held.signal aborted before anyone else was granted job");
      assert.ok(lease.token > run.held.token);
      assert.equal((await c.stats()).graceLeft, 0);
    } finally {
      await c.close();
      await run.close();
    }
  });

  test("answers distlockd clients busy during the grace, and grants them after it", async () => {
    const server = await serve({ port: 0, restartGrace: 600 });
    const raw = await RawConnection.open(server.address.port);
    try {
      raw.send(encodeDistlockdRequest(DistlockdCommand.ACQUIRE, "d-job", "client-1"));
      const busy = await raw.waitBytes(3);
      assert.equal(busy[0], 2, "TIMEOUT (busy) during the grace");
      const length = 3 + (busy[1] << 8 | busy[2]);
      await raw.waitBytes(length);
      await sleep(800);
      raw.send(encodeDistlockdRequest(DistlockdCommand.ACQUIRE, "d-job", "client-1"));
      const after = await raw.waitBytes(length + 3);
      assert.equal(after[length], 0, "OK once the grace is over");
    } finally {
      raw.close();
      await server.close();
    }
  });

  test("refuses a restartGrace that is not a whole number of ms from 0", async () => {
    for (const restartGrace of [-1, 1.5, NaN, Infinity]) {
      // One that starts anyway is closed, so that it cannot keep the test running.
      const outcome = await serve({ port: 0, restartGrace }).then(
        (server) => server.close().then(() => "started"),
        (error) => error,
      );
      assert.ok(outcome instanceof ServeOptionError, `${restartGrace}: ${outcome}`);
    }
  });
});

describe("socketlock serve --restart-grace", () => {
  const kids: Child[] = [];
  after(() => {
    for (const kid of kids) kid.process.kill("SIGKILL");
  });

  for (const rt of childRuntimes(1)) {
    test(`serve from ${rt} with --restart-grace answers tries busy and grants waits after it`, async () => {
      const proc = await serveProcess(rt, ["--restart-grace", "1000"]);
      kids.push(proc.child);
      const raw = await RawConnection.open(proc.port);
      try {
        const stats = await raw.ask("STATS");
        const asked = performance.now();
        const left = Number(/"graceLeft":(\d+)/.exec(stats)?.[1]);
        assert.ok(left > 0 && left <= 1_000, stats);
        assert.match(await raw.ask("ACQUIRE cli-job 0"), /^q\d+ BUSY null$/);
        raw.send("w1 ACQUIRE cli-job 10000\n");
        assert.match(await raw.waitLine(/^w1 QUEUED/), /^w1 QUEUED 1 null$/);
        assert.match(await raw.waitLine(/^w1 OK/, 5_000), /^w1 OK \d+ \d+ \d+$/);
        const waited = performance.now() - asked;
        assert.ok(
          waited >= left - 50,
          `granted ${Math.round(waited)} ms after ${left} ms were left`,
        );
      } finally {
        raw.close();
        proc.child.process.kill("SIGKILL");
      }
    });
  }

  test("serve refuses a --restart-grace that is not a whole number of ms from 0, and takes 0", async () => {
    const cases = [["-1"], ["1.5"], ["x"], [""]];
    const started = cases.map((args) => runCli("node", ["serve", "--restart-grace", ...args]));
    kids.push(...started);
    const results = await Promise.all(
      started.map((kid, i) => within(kid.done, 30_000, `serve --restart-grace ${cases[i]}`)),
    );
    for (const [i, result] of results.entries()) {
      assert.equal(result.code, 64, cases[i].join(" "));
      assert.match(result.stderr, /--restart-grace takes a whole number of milliseconds/);
    }
    const zero = await serveProcess("node", ["--restart-grace", "0"]);
    kids.push(zero.child);
    const raw = await RawConnection.open(zero.port);
    try {
      assert.match(await raw.ask("ACQUIRE zero-job 0"), /^q\d+ OK /);
    } finally {
      raw.close();
      zero.child.process.kill("SIGKILL");
    }
  });
});
